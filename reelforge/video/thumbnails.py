"""Posters and scrubbing thumbnails.

Contract: :func:`choose_poster_frame` decodes a handful of candidate frames spread over the
source and returns the most representative one that is neither black, blank nor washed
out, already rotated and at display aspect ratio. :func:`write_poster` saves it as AVIF,
WebP and JPEG with content-hashed names, :func:`write_poster_preview` as a small WebP for
pages to inline. :func:`write_sprites` tiles frames taken every
``interval`` seconds into sprite sheets with a WebVTT index (``#xywh=`` fragments).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from reelforge import layout
from reelforge.layout import content_name
from reelforge.media.probe import VideoStreamInfo
from reelforge.video.webvtt import timestamp

CANDIDATES = 12
MIN_LUMA, MAX_LUMA, MIN_CONTRAST = 24.0, 232.0, 12.0


@dataclass(frozen=True)
class FrameScore:
    time: float
    luma: float
    contrast: float
    sharpness: float

    @property
    def usable(self) -> bool:
        return MIN_LUMA <= self.luma <= MAX_LUMA and self.contrast >= MIN_CONTRAST

    @property
    def value(self) -> float:
        return self.contrast * float(np.log1p(self.sharpness))


def score_image(img: Image.Image, time: float = 0.0) -> FrameScore:
    """Brightness, contrast (luma std) and sharpness (variance of the Laplacian)."""
    small = img.convert("L")
    small.thumbnail((320, 320))
    y = np.asarray(small, dtype=np.float32)
    lap = (
        -4 * y[1:-1, 1:-1] + y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:]
        if y.shape[0] > 2 and y.shape[1] > 2
        else np.zeros((1, 1), np.float32)
    )
    return FrameScore(time, float(y.mean()), float(y.std()), float(lap.var()))


def to_display_image(frame: av.VideoFrame, video: VideoStreamInfo) -> Image.Image:
    """An RGB image of ``frame`` as it is meant to be seen: rotated, square pixels."""
    img = frame.to_image()
    w, h = video.display_width, video.display_height
    if video.rotation in (90, 270):
        w, h = h, w
    if img.size != (w, h):
        img = img.resize((w, h), Image.Resampling.LANCZOS)
    if video.rotation:
        img = img.rotate(video.rotation, expand=True)
    return img


def _frame_at(container, stream, t: float) -> av.VideoFrame | None:
    """The first frame at or after ``t`` seconds of media time (from the stream's first
    timestamp); seeks to the keyframe before it."""
    base = stream.start_time or 0
    target = base + (int(t / stream.time_base) if stream.time_base else 0)
    try:
        container.seek(max(target, 0), stream=stream, backward=True)
        last = None
        for frame in container.decode(stream):
            last = frame
            if frame.pts is None or frame.pts >= target:
                return frame
        return last
    except av.FFmpegError:
        return None


def candidate_times(duration: float) -> list[float]:
    """Where poster candidates are taken: :data:`CANDIDATES` times over the middle 90%."""
    return [duration * (0.05 + 0.9 * i / max(1, CANDIDATES - 1)) for i in range(CANDIDATES)]


def _choose(path: Path, duration: float, picture) -> tuple[Image.Image, FrameScore]:
    best: tuple[Image.Image, FrameScore] | None = None
    fallback: tuple[Image.Image, FrameScore] | None = None
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for t in candidate_times(duration):
            frame = _frame_at(container, stream, t)
            if frame is None:
                continue
            img = picture(frame)
            score = score_image(img, t)
            if fallback is None or score.contrast > fallback[1].contrast:
                fallback = (img, score)
            if score.usable and (best is None or score.value > best[1].value):
                best = (img, score)
    chosen = best or fallback
    if chosen is None:
        raise ValueError("no decodable frame for a poster")
    return chosen


def choose_poster_frame(
    source: Path, video: VideoStreamInfo, duration: float
) -> tuple[Image.Image, FrameScore]:
    """Pick the best candidate frame from the middle 90% of the source."""
    return _choose(source, duration, lambda frame: to_display_image(frame, video))


def choose_rendition_frame(rendition: Path, duration: float) -> tuple[Image.Image, FrameScore]:
    """:func:`choose_poster_frame` over an encoded rendition (upright, square pixels, SDR):
    the same candidates and scores, at a fraction of the cost of decoding the source when
    the rendition is small. The score's ``time`` says where the frame is."""
    return _choose(rendition, duration, lambda frame: frame.to_image())


def frame_image(source: Path, video: VideoStreamInfo, t: float) -> Image.Image | None:
    """The source's frame at ``t`` seconds, as it is meant to be seen (None: undecodable)."""
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frame = _frame_at(container, stream, t)
        return to_display_image(frame, video) if frame is not None else None


def encode_image(img: Image.Image, fmt: str, max_width: int | None = None) -> bytes:
    """Encode an RGB image as ``avif``, ``webp`` or ``jpeg`` with web-tuned settings."""
    if max_width and img.width > max_width:
        img = img.resize(
            (max_width, round(img.height * max_width / img.width / 2) * 2),
            Image.Resampling.LANCZOS,
        )
    buf = io.BytesIO()
    img = img.convert("RGB")
    if fmt == "jpeg":
        img.save(buf, "JPEG", quality=85, optimize=True, progressive=True)
    elif fmt == "webp":
        img.save(buf, "WEBP", quality=80, method=5)
    elif fmt == "avif":
        img.save(buf, "AVIF", quality=60, speed=6)
    else:
        raise ValueError(f"unknown image format {fmt}")
    return buf.getvalue()


POSTER_FORMATS = {"avif": ".avif", "webp": ".webp", "jpeg": ".jpg"}


def write_poster(img: Image.Image, outdir: Path, max_width: int) -> dict[str, str]:
    """Write the poster in every format; returns format -> file name."""
    names: dict[str, str] = {}
    for fmt, suffix in POSTER_FORMATS.items():
        data = encode_image(img, fmt, max_width)
        name = content_name(layout.POSTER, data, suffix)
        (outdir / name).write_bytes(data)
        names[fmt] = name
    return names


PREVIEW_WIDTH = 320
PREVIEW_QUALITY = 40


def write_poster_preview(img: Image.Image, outdir: Path) -> str:
    """A small WebP of the poster (320 px wide, about 4 KB) that a player page can inline so
    something shows before any request; returns its file name."""
    img = img.convert("RGB")
    height = max(2, round(img.height * PREVIEW_WIDTH / img.width / 2) * 2)
    small = img.resize((PREVIEW_WIDTH, height), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    small.save(buf, "WEBP", quality=PREVIEW_QUALITY, method=6)
    name = content_name(layout.POSTER_PREVIEW, buf.getvalue(), ".webp")
    (outdir / name).write_bytes(buf.getvalue())
    return name


@dataclass(frozen=True)
class SpriteResult:
    vtt: str
    sheets: list[str]
    count: int
    tile_width: int
    tile_height: int


def write_sprites(
    rendition: Path,
    outdir: Path,
    *,
    duration: float,
    interval: float,
    tile_width: int = 160,
    columns: int = 10,
    rows: int = 10,
    sheet_dir: str = layout.SPRITE_DIR,
    vtt_name: str = layout.THUMBNAILS_VTT,
) -> SpriteResult:
    """Tile keyframes of ``rendition`` (every ``interval`` s) into JPEG sprite sheets.

    Only keyframes are decoded (the ladder puts one on every grid point), so this reads a
    small fraction of the frames.
    """
    tiles: list[tuple[float, Image.Image]] = []
    next_t = 0.0
    with av.open(str(rendition)) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONKEY"
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base) if frame.pts is not None else next_t
            if t < next_t - interval / 4:
                continue
            img = frame.to_image()
            th = max(2, round(img.height * tile_width / img.width / 2) * 2)
            tiles.append((t, img.resize((tile_width, th), Image.Resampling.LANCZOS)))
            while next_t <= t + interval / 4:
                next_t += interval
    if not tiles:
        raise ValueError(f"{rendition}: no keyframes to make thumbnails from")
    # The first frame is presented at time zero (the encoder's reorder delay is not content).
    offset = tiles[0][0]
    tiles = [(t - offset, img) for t, img in tiles]
    tile_h = tiles[0][1].height
    per_sheet = columns * rows
    (outdir / sheet_dir).mkdir(parents=True, exist_ok=True)
    cues = ["WEBVTT", ""]
    sheets: list[str] = []
    for first in range(0, len(tiles), per_sheet):
        chunk = tiles[first : first + per_sheet]
        cols = min(columns, len(chunk))
        sheet = Image.new("RGB", (cols * tile_width, ((len(chunk) - 1) // columns + 1) * tile_h))
        for i, (_, tile) in enumerate(chunk):
            sheet.paste(tile, ((i % columns) * tile_width, (i // columns) * tile_h))
        buf = io.BytesIO()
        sheet.save(buf, "JPEG", quality=70, optimize=True, progressive=True)
        name = content_name(layout.sprite_stem(first // per_sheet), buf.getvalue(), ".jpg")
        (outdir / sheet_dir / name).write_bytes(buf.getvalue())
        sheets.append(f"{sheet_dir}/{name}")
        for i, (t, _) in enumerate(chunk):
            index = first + i
            end = tiles[index + 1][0] if index + 1 < len(tiles) else duration
            x, y = (i % columns) * tile_width, (i // columns) * tile_h
            cues += [
                f"{timestamp(t)} --> {timestamp(max(end, t + 0.001))}",
                f"{sheet_dir}/{name}#xywh={x},{y},{tile_width},{tile_h}",
                "",
            ]
    (outdir / vtt_name).write_text("\n".join(cues), encoding="utf-8")
    return SpriteResult(vtt_name, sheets, len(tiles), tile_width, tile_h)
