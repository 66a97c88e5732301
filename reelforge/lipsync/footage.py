"""The picture a talking video is made from: a still portrait or a video being dubbed.

Contract:

- :func:`load_portrait` reads an image upright (EXIF orientation applied) as RGB, downscaled
  to at most 1920 px with a note, cropped to even sides.
- :class:`VideoFootage` opens a video (a one-line :class:`~reelforge.errors.InputError` for a
  file that is not one, or has no video stream) and yields its frames upright as RGB: a
  phone video's rotation is applied, so a portrait clip comes out portrait. Its frame rate
  is the stream's nominal rate.
- :func:`frame_plan` maps output frames to source frames for a ``sync_mode`` when the audio
  and the video differ in length (see :data:`SYNC_MODES`).
- :func:`track` finds the face on every frame; :func:`smooth` steadies the landmarks over
  time without crossing frames that have no face.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from reelforge.errors import InputError
from reelforge.lipsync.faces import Face, FaceTracker
from reelforge.media.probe import check_readable_file

MAX_SIDE = 1920
SYNC_MODES = {
    "cut": "output as long as the shorter of audio and video",
    "loop": "audio longer: the video repeats; shorter: the video is trimmed",
    "pingpong": "audio longer: the video plays forwards then backwards; shorter: trimmed",
    "pad": "audio shorter: padded with silence; longer: the last frame is held",
}


def load_portrait(path: Path, notes: list[str]) -> np.ndarray:
    check_readable_file(path)
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img).convert("RGB")
    except (UnidentifiedImageError, OSError):
        raise InputError("not an image that can be read", path=path) from None
    if max(img.size) > MAX_SIDE:
        scale = MAX_SIDE / max(img.size)
        size = (round(img.width * scale), round(img.height * scale))
        notes.append(f"image downscaled from {img.width}x{img.height} to {size[0]}x{size[1]}")
        img = img.resize(size, Image.Resampling.LANCZOS)
    w, h = img.width - img.width % 2, img.height - img.height % 2
    return np.asarray(img)[:h, :w].copy()


class VideoFootage:
    """A video's frames, upright, in order (decoded afresh by each call to :meth:`frames`)."""

    def __init__(self, path: Path) -> None:
        check_readable_file(path)
        self.path = path
        try:
            container = av.open(str(path))
        except (av.FFmpegError, UnicodeDecodeError):
            raise InputError("not a video that can be read", path=path) from None
        with container:
            if not container.streams.video:
                raise InputError("has no video stream", path=path)
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or Fraction(25)
            self.fps = Fraction(rate).limit_denominator(1001)
            first = next(container.decode(stream), None)
            if first is None:
                raise InputError("has a video stream without frames", path=path)
            self.rotation = int(getattr(first, "rotation", 0) or 0)
            w, h = first.width, first.height
            container.seek(0)
            # Packets, not decoded frames: counting costs a demux, not a decode.
            self.count = sum(1 for p in container.demux(stream) if p.size)
        turns = round(self.rotation / 90) % 4
        self._turns = turns
        self.width, self.height = (h, w) if turns % 2 else (w, h)

    def frames(self) -> Iterator[np.ndarray]:
        with av.open(str(self.path)) as container:
            for frame in container.decode(video=0):
                rgb = frame.to_ndarray(format="rgb24")
                yield np.ascontiguousarray(np.rot90(rgb, k=self._turns)) if self._turns else rgb


def frame_plan(n_video: int, n_audio: int, mode: str) -> np.ndarray:
    """Source frame index for each output frame (see :data:`SYNC_MODES`)."""
    if mode not in SYNC_MODES:
        raise InputError(f"unknown --sync-mode {mode!r}; choose one of {', '.join(SYNC_MODES)}")
    if mode == "cut":
        return np.arange(min(n_video, n_audio))
    if mode == "pad":
        return np.minimum(np.arange(max(n_video, n_audio)), n_video - 1)
    i = np.arange(n_audio)
    if mode == "loop" or n_video < 2:
        return i % n_video
    period = 2 * (n_video - 1)
    j = i % period
    return np.where(j < n_video, j, period - j)


def track(frames: Iterator[np.ndarray], face_index: int = 0) -> list[Face | None]:
    """The chosen face's landmarks on every frame (``None`` where none is found)."""
    with FaceTracker(index=face_index, max_faces=max(4, face_index + 1)) as tracker:
        return [tracker.track(frame) for frame in frames]


def smooth(faces: list[Face | None], radius: int = 2) -> list[Face | None]:
    """Landmarks averaged over up to ``radius`` frames either side, within each run of
    frames that have a face (a cut or a lost face is never blurred across)."""
    out: list[Face | None] = list(faces)
    i = 0
    while i < len(faces):
        if faces[i] is None:
            i += 1
            continue
        j = i
        while j < len(faces) and faces[j] is not None:
            j += 1
        points = np.stack([f.points for f in faces[i:j]])  # type: ignore[union-attr]
        for k in range(i, j):
            lo, hi = max(i, k - radius), min(j, k + radius + 1)
            p = points[lo - i : hi - i].mean(axis=0).astype(np.float32)
            x0, y0 = p.min(axis=0)
            x1, y1 = p.max(axis=0)
            out[k] = Face(p, (float(x0), float(y0), float(x1), float(y1)))
        i = j
    return out
