"""The picture a talking video is made from: a still portrait or a video being dubbed.

Contract:

- :func:`load_portrait` reads an image with the safe image reader that ``images`` uses
  (:func:`reelforge.images.source.load`: size and pixel limits checked from the header
  before decoding, EXIF orientation applied, ICC profiles converted to sRGB) as RGB,
  downscaled to at most :data:`MAX_SIDE` px with a note, cropped to even sides; a picture
  under :data:`MIN_SIDE` px on a side is refused.
- :class:`VideoFootage` opens a video (a one-line :class:`~reelforge.errors.InputError` for a
  file that is not one, or has no video stream) and yields its frames upright as planar
  YUV 4:2:0 (``(h * 3 / 2, w)`` uint8), refusing one under :data:`MIN_SIDE` px on a side: a
  phone video's rotation is applied, so a portrait
  clip comes out portrait. Its frame rate is the stream's nominal rate. Working in the
  source's own YUV lets a dub keep every pixel outside the face exactly as decoded:
  :func:`to_rgb` gives renderers RGB, and :func:`paste_changes` writes back only the
  region a renderer changed.
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

from reelforge.errors import InputError
from reelforge.images import source
from reelforge.lipsync.faces import Face, FaceTracker
from reelforge.media.probe import check_readable_file

MAX_SIDE = 1920  # larger portraits are downscaled to this (with a note)
MIN_SIDE = 64  # smaller pictures hold no face that can be animated
SYNC_MODES = {
    "cut": "output as long as the shorter of audio and video",
    "loop": "audio longer: the video repeats; shorter: the video is trimmed",
    "pingpong": "audio longer: the video plays forwards then backwards; shorter: trimmed",
    "pad": "audio shorter: padded with silence; longer: the last frame is held",
}


def load_portrait(path: Path, notes: list[str]) -> np.ndarray:
    """The portrait as an upright sRGB ``(h, w, 3)`` uint8 array (see the module docstring);
    a downscale is recorded in ``notes``. Raises :class:`InputError` naming the file."""
    picture = source.load(path, min_side=MIN_SIDE, max_side=MAX_SIDE)
    img = picture.image.convert("RGB")
    if picture.source_size != img.size:
        (sw, sh), (w, h) = picture.source_size, img.size
        notes.append(f"image downscaled from {sw}x{sh} to {w}x{h}")
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
            if min(first.width, first.height) < MIN_SIDE:
                raise InputError(f"{first.width}x{first.height} is too small (under "
                                 f"{MIN_SIDE} px on a side)", path=path)  # fmt: skip
            w, h = first.width - first.width % 2, first.height - first.height % 2
            container.seek(0)
            # Packets, not decoded frames: counting costs a demux, not a decode.
            self.count = sum(1 for p in container.demux(stream) if p.size)
        turns = round(self.rotation / 90) % 4
        self._turns = turns
        self.width, self.height = (h, w) if turns % 2 else (w, h)

        self._size = (w, h)  # stored (unrotated), even

    def frames(self) -> Iterator[np.ndarray]:
        """Planar YUV 4:2:0 frames, upright (odd sizes lose their last row or column)."""
        w, h = self._size
        with av.open(str(self.path)) as container:
            for frame in container.decode(video=0):
                if frame.format.name != "yuv420p" or (frame.width, frame.height) != (w, h):
                    if (frame.width, frame.height) != (w, h):
                        frame = _crop_even(frame)
                    frame = frame.reformat(format="yuv420p")
                yuv = frame.to_ndarray()
                yield _rotate_planes(yuv, w, h, self._turns) if self._turns else yuv

    def rgb_frames(self) -> Iterator[np.ndarray]:
        return (to_rgb(yuv) for yuv in self.frames())


def _crop_even(frame: av.VideoFrame) -> av.VideoFrame:
    rgb = frame.to_ndarray(format="rgb24")
    h, w = rgb.shape[0] - rgb.shape[0] % 2, rgb.shape[1] - rgb.shape[1] % 2
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:h, :w]), format="rgb24")


def _planes(yuv: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = yuv[:h]
    chroma = yuv[h:].reshape(2, h // 2, w // 2)
    return y, chroma[0], chroma[1]


def _join(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    h, w = y.shape
    return np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(h * 3 // 2, w)


def _rotate_planes(yuv: np.ndarray, w: int, h: int, turns: int) -> np.ndarray:
    return _join(*(np.rot90(p, k=turns) for p in _planes(yuv, w, h)))


def to_rgb(yuv: np.ndarray) -> np.ndarray:
    """RGB for a planar 4:2:0 frame (swscale's default matrix; :func:`paste_changes` uses
    the same one back, so an untouched pixel makes the round trip unchanged in meaning)."""
    return av.VideoFrame.from_ndarray(yuv, format="yuv420p").to_ndarray(format="rgb24")


def paste_changes(yuv: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """``yuv`` with the region where ``after`` differs from ``before`` (both RGB) replaced by
    ``after`` converted back to YUV; every pixel outside that region is left as it was."""
    changed = np.any(before != after, axis=2)
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    if rows.size == 0:
        return yuv
    h, w = changed.shape
    y0, y1 = rows[0] - rows[0] % 2, min(h, rows[-1] + 1 + (rows[-1] + 1) % 2)
    x0, x1 = cols[0] - cols[0] % 2, min(w, cols[-1] + 1 + (cols[-1] + 1) % 2)
    crop = np.ascontiguousarray(after[y0:y1, x0:x1])
    patch = av.VideoFrame.from_ndarray(crop, format="rgb24").reformat(format="yuv420p")
    py, pu, pv = _planes(patch.to_ndarray(), x1 - x0, y1 - y0)
    out = yuv.copy()
    oy, ou, ov = _planes(out, w, h)
    oy[y0:y1, x0:x1] = py
    ou[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = pu
    ov[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = pv
    return out


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
