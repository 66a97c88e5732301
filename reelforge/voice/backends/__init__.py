"""Speech backends, chosen by name.

Contract: :func:`create` builds a backend from its name and options; hosted backends check
their API key here and raise :class:`~reelforge.errors.InputError` when it is missing.
:func:`default_name` is ``piper`` when its voice is installed, else ``espeak``.
"""

from __future__ import annotations

from collections.abc import Callable

from reelforge.errors import InputError
from reelforge.voice.backends.base import Backend


def _espeak(**opts) -> Backend:
    from reelforge.voice.backends.espeak import EspeakBackend

    return EspeakBackend(**opts)


def _piper(**opts) -> Backend:
    from reelforge.voice.backends.piper import PiperBackend

    return PiperBackend(**opts)


def _dia(**opts) -> Backend:
    from reelforge.voice.backends.dia import DiaBackend

    return DiaBackend(**opts)


def _fal(**opts) -> Backend:
    from reelforge.voice.backends.fal import FalBackend

    return FalBackend(**opts)


def _segmind(**opts) -> Backend:
    from reelforge.voice.backends.segmind import SegmindBackend

    return SegmindBackend(**opts)


REGISTRY: dict[str, Callable[..., Backend]] = {
    "espeak": _espeak,
    "piper": _piper,
    "dia": _dia,
    "fal": _fal,
    "segmind": _segmind,
}
OFFLINE = {"espeak", "piper"}  # time every line exactly; synthesised turn by turn


def default_name() -> str:
    from reelforge.voice.backends.piper import available

    return "piper" if available() else "espeak"


def create(name: str | None, **opts) -> Backend:
    name = name or default_name()
    if name not in REGISTRY:
        raise InputError(f"unknown voice backend {name!r}; choose from {', '.join(REGISTRY)}")
    return REGISTRY[name](**{k: v for k, v in opts.items() if v is not None})
