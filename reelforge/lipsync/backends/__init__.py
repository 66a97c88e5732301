"""Lip-sync renderers, chosen by name: local ones behind :class:`Renderer`, hosted ones
behind :class:`HostedBackend`.

Contract: :func:`local_renderer` builds the local renderer called ``name`` (``viseme``,
``wav2lip``) for a :class:`RenderJob`; :func:`hosted` the hosted backend called ``name``
(``syncso``, ``fal``, ``sonic``, ``did``, ``tavus``, ``heygen``, ``synthesia``, ``vozo``,
``lipdub``), with its key and URLs from the :class:`~reelforge.config.Services` given (a
missing key is an :class:`~reelforge.errors.InputError` naming its variable); :data:`NAMES`
lists them all, local first. A renderer's :meth:`Renderer.run` turns ``(index, RGB frame,
face or None)`` items into RGB frames of the same size, one per item, in order; a hosted
backend's ``render`` sends the files to its service and returns the video's bytes and what
the service said.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from reelforge.config import Services
from reelforge.errors import InputError
from reelforge.lipsync.faces import Face
from reelforge.lipsync.speech import RATE


@dataclass(frozen=True)
class RenderJob:
    """What a local renderer is built from: the picture's kind (``"image"`` or
    ``"video"``), its frame rate and frame count, the speech (mono float32 at
    :data:`~reelforge.lipsync.speech.RATE`), and the talk options renderers read."""

    kind: str
    fps: float
    frames: int
    speech: np.ndarray
    motion: bool = True
    seed: int = 0
    checkpoint: Path | None = None
    device: str = "cpu"


class Renderer(Protocol):
    def run(self, items: Iterable[tuple[int, np.ndarray, Face | None]]) -> Iterator[np.ndarray]:
        """One rendered RGB frame per ``(index, frame, face)`` item, in order."""
        ...


class HostedBackend(Protocol):
    name: str
    accepts: tuple[str, ...]  # "image", "video"

    def render(self, visual: Path, audio: Path, sync_mode: str) -> tuple[bytes, dict]:
        """The service's video for ``visual`` speaking ``audio``, and its job facts."""
        ...


def _viseme(job: RenderJob) -> Renderer:
    from reelforge.lipsync.backends.viseme import (
        VisemeRenderer,
        blink_track,
        head_motion,
        openness_track,
    )
    from reelforge.lipsync.speech import band_energy

    openness = openness_track(band_energy(job.speech, job.frames, job.fps))
    if job.kind == "image":
        blinks = blink_track(job.frames, job.fps, job.seed)
        sway = head_motion(job.frames, job.fps, 1.5 if job.motion else 0.0, job.seed)
        return VisemeRenderer(openness, blinks, sway, still=True)
    return VisemeRenderer(openness, still=False)


def _wav2lip(job: RenderJob) -> Renderer:
    from reelforge.lipsync.backends.wav2lip import (
        Wav2LipRenderer,
        load_model,
        mel_chunks,
        melspectrogram,
    )

    if job.checkpoint is None:
        raise InputError("the wav2lip backend needs --checkpoint PATH (Wav2Lip weights)")
    model = load_model(Path(job.checkpoint), job.device)
    need = int(np.ceil(job.frames / job.fps * RATE))
    audio = np.pad(job.speech, (0, max(0, need - job.speech.size)))[:need]
    mels = mel_chunks(melspectrogram(audio), job.frames, job.fps)
    return Wav2LipRenderer(model, mels, job.device)


LOCAL: dict[str, Callable[[RenderJob], Renderer]] = {"viseme": _viseme, "wav2lip": _wav2lip}


def _hosted_table() -> dict[str, Callable[..., HostedBackend]]:
    from reelforge.lipsync.backends.hosted import HOSTED

    return HOSTED


HOSTED_NAMES = ("syncso", "fal", "sonic", "did", "tavus", "heygen", "synthesia", "vozo",
                "lipdub")  # fmt: skip
NAMES = (*LOCAL, *HOSTED_NAMES)


def local_renderer(name: str, job: RenderJob) -> Renderer:
    if name not in LOCAL:
        raise InputError(f"unknown local lip-sync backend {name!r}; choose from "
                         f"{', '.join(LOCAL)}")  # fmt: skip
    return LOCAL[name](job)


def hosted(name: str, services: Services, model: str | None, poll_interval: float,
           timeout: float) -> HostedBackend:  # fmt: skip
    table = _hosted_table()
    if name not in table:
        raise InputError(f"unknown hosted lip-sync backend {name!r}; choose from "
                         f"{', '.join(table)}")  # fmt: skip
    return table[name](services, model=model, poll_interval=poll_interval, timeout=timeout)
