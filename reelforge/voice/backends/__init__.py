"""Speech backends, chosen by name.

Contract: :func:`create` builds a backend from its name and options; hosted backends take
their API key and base URL from the :class:`~reelforge.config.Services` given (none given:
no keys), checking the key here: a missing one is an :class:`~reelforge.errors.InputError`
naming its variable.
:func:`default_name` is ``piper`` when its voice is installed, else ``espeak``.
"""

from __future__ import annotations

from collections.abc import Callable

from reelforge.config import Services
from reelforge.errors import InputError
from reelforge.voice.backends.base import Backend


def _espeak(services: Services, **opts) -> Backend:
    from reelforge.voice.backends.espeak import EspeakBackend

    return EspeakBackend(**opts)


def _piper(services: Services, **opts) -> Backend:
    from reelforge.voice.backends.piper import PiperBackend

    return PiperBackend(**opts)


def _dia(services: Services, **opts) -> Backend:
    from reelforge.voice.backends.dia import DiaBackend

    return DiaBackend(**opts)


def _fal(services: Services, **opts) -> Backend:
    from reelforge.voice.backends.fal import FalBackend

    return FalBackend(services, **opts)


def _segmind(services: Services, **opts) -> Backend:
    from reelforge.voice.backends.segmind import SegmindBackend

    return SegmindBackend(services, **opts)


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


def create(name: str | None, services: Services | None = None, **opts) -> Backend:
    name = name or default_name()
    if name not in REGISTRY:
        raise InputError(f"unknown voice backend {name!r}; choose from {', '.join(REGISTRY)}")
    given = {k: v for k, v in opts.items() if v is not None}
    return REGISTRY[name](services or Services(), **given)
