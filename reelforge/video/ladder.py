"""Bitrate ladders: the rungs to encode, fitted to a source.

Contract: :func:`plan` turns abstract rungs (a box size and a bitrate) into concrete
renditions for one source: sized to the source's display aspect ratio (rotation and
non-square pixels honoured), even dimensions, never above the source's resolution, frame
rate capped per rung. It is a pure function; nothing here touches files except
:func:`load_ladder_file`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, field_validator

from reelforge import layout
from reelforge.errors import InputError

LOW_RUNG_MAX_FPS = 30.0
LOW_RUNG_MAX_KBPS = 1100
HIGH_RUNG_MAX_FPS = 60.0
MAXRATE_FACTOR = 1.5  # VBV peak rate relative to the average target
BUFSIZE_FACTOR = 1.5  # VBV buffer, in seconds of the average target
MIN_EXTRA_PIXELS = 1.15  # a source-sized top rung must add this much over the largest rung
SAME_SIZE_STEP = 1.3  # or, at about the same size, this much more bitrate


class Rung(BaseModel):
    """An abstract rung: a bounding box for landscape video and a video bitrate."""

    width: int = Field(gt=0, le=8192)
    height: int = Field(gt=0, le=8192)
    bitrate_kbps: int = Field(gt=0, le=200_000)
    max_fps: float | None = Field(default=None, gt=0)
    # Capped CRF instead of a bitrate target (per-title ladders): the bitrate then only
    # sets the VBV cap; codecs without a CRF mapping use the bitrate as their target.
    crf: float | None = Field(default=None, ge=0, le=51)

    @field_validator("width", "height")
    @classmethod
    def _even(cls, v: int) -> int:
        return v + (v % 2)


# Apple HLS Authoring Specification, H.264 ladder for 16:9 content (video bitrates).
APPLE_H264_LADDER: tuple[Rung, ...] = tuple(
    Rung(width=w, height=h, bitrate_kbps=b)
    for w, h, b in [
        (416, 234, 145), (640, 360, 365), (768, 432, 730), (768, 432, 1100),
        (960, 540, 2000), (1280, 720, 3000), (1280, 720, 4500),
        (1920, 1080, 6000), (1920, 1080, 7800),
    ]
)  # fmt: skip


class Rendition(BaseModel):
    """A concrete video rendition of one source."""

    name: str
    codec: str = "h264"
    width: int
    height: int
    bitrate_kbps: int
    maxrate_kbps: int
    bufsize_kbits: int
    fps: float
    fps_filter: str | None  # extra filter that lowers the frame rate, if any
    crf: float | None = None  # capped CRF (per-title) instead of the bitrate target


def _even(x: float) -> int:
    return max(2, round(x / 2) * 2)


def fit(box_w: int, box_h: int, disp_w: int, disp_h: int) -> tuple[int, int]:
    """Largest even size with the source's aspect ratio inside the box (box turned for portrait)."""
    if disp_h > disp_w:
        box_w, box_h = box_h, box_w
    scale = min(box_w / disp_w, box_h / disp_h)
    return _even(disp_w * scale), _even(disp_h * scale)


def frame_rate_plan(source_fps: float, cap: float) -> tuple[float, str | None]:
    """The frame rate for a rung capped at ``cap`` fps, and the filter that gets there.

    Whole-number divisions keep every other (third, ...) frame, so keyframe times stay
    identical to full-rate renditions; other ratios fall back to the ``fps`` filter.
    """
    if source_fps <= cap + 1e-3:
        return source_fps, None
    divisor = math.ceil(source_fps / cap - 1e-6)
    if source_fps / divisor >= 23.9:
        return source_fps / divisor, f"framestep={divisor}"
    return cap, f"fps={cap:g}"


def plan(
    rungs: list[Rung] | tuple[Rung, ...],
    *,
    display_width: int,
    display_height: int,
    source_fps: float,
    codec: str = "h264",
) -> list[Rendition]:
    """Concrete renditions of ``rungs`` for a source of the given display size and rate."""
    if display_width <= 0 or display_height <= 0:
        raise InputError("source has no usable picture size")
    src_w, src_h = _even_floor(display_width), _even_floor(display_height)
    out: list[Rendition] = []
    sizes_seen: set[tuple[int, int]] = set()
    clamped = False
    for rung in sorted(rungs, key=lambda r: (r.bitrate_kbps, r.width * r.height)):
        w, h = fit(rung.width, rung.height, display_width, display_height)
        bitrate = rung.bitrate_kbps
        if w > src_w or h > src_h:
            if clamped:
                continue
            clamped = True
            bitrate = int(rung.bitrate_kbps * (src_w * src_h) / (w * h))
            w, h = src_w, src_h
            largest = max(out, key=lambda r: r.width * r.height, default=None)
            if largest is not None and w * h < largest.width * largest.height * MIN_EXTRA_PIXELS:
                # About the size of a rung we have: worth it only as a clearly richer copy.
                if bitrate < largest.bitrate_kbps * SAME_SIZE_STEP:
                    continue
            elif out:
                bitrate = max(bitrate, int(out[-1].bitrate_kbps * SAME_SIZE_STEP))
        if (w, h) in sizes_seen and any(
            r.width == w and r.height == h and r.bitrate_kbps == bitrate for r in out
        ):
            continue
        sizes_seen.add((w, h))
        cap = rung.max_fps or (
            LOW_RUNG_MAX_FPS if bitrate <= LOW_RUNG_MAX_KBPS else HIGH_RUNG_MAX_FPS
        )
        fps, fps_filter = frame_rate_plan(source_fps, cap)
        out.append(
            Rendition(
                name=layout.video_track_id(codec, w, h, bitrate),
                codec=codec,
                width=w,
                height=h,
                bitrate_kbps=bitrate,
                maxrate_kbps=int(bitrate * MAXRATE_FACTOR),
                bufsize_kbits=int(bitrate * BUFSIZE_FACTOR),
                fps=round(fps, 3),
                fps_filter=fps_filter,
                crf=rung.crf if bitrate == rung.bitrate_kbps else None,
            )
        )
    return out


def _even_floor(x: int) -> int:
    return max(2, x - (x % 2))


def load_ladder_file(path: str | Path) -> list[Rung]:
    """Read rungs from a JSON file: a list of ``{width, height, bitrate_kbps[, max_fps]}``
    or an object with such a list under ``"rungs"``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("ladder file not found", path=path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"ladder file is not valid JSON ({exc})", path=path) from None
    items = data.get("rungs") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise InputError("ladder file must hold a non-empty list of rungs", path=path)
    try:
        return [Rung.model_validate(item) for item in items]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(f"bad rung ({where}: {first['msg']})", path=path) from None
