"""Describe a media file with PyAV: container, streams, keyframes and MP4 layout.

Contract: :func:`probe` either returns a :class:`MediaInfo` or raises
:class:`~reelforge.errors.InputError` with a one-line reason (missing, a directory, empty,
truncated, not media). It never modifies the file.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from pydantic import BaseModel

from reelforge.errors import InputError
from reelforge.media import mp4

KEYFRAME_SCAN_SECONDS = 120.0

# ITU-T H.273 transfer characteristics, as ffmpeg names them.
TRANSFER_NAMES = {
    1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear",
    9: "log100", 10: "log316", 11: "iec61966-2-4", 12: "bt1361e", 13: "iec61966-2-1",
    14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 17: "smpte428", 18: "arib-std-b67",
}  # fmt: skip
PRIMARIES_NAMES = {
    1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
    8: "film", 9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432",
}  # fmt: skip
FIELD_ORDERS = {0: "unknown", 1: "progressive", 2: "tt", 3: "bb", 4: "tb", 5: "bt"}
HDR_TRANSFERS = {"smpte2084", "arib-std-b67"}


class VideoStreamInfo(BaseModel):
    """One video stream as stored, plus how it is meant to be displayed."""

    index: int
    codec: str
    profile: str | None
    width: int
    height: int
    sample_aspect_ratio: str
    display_aspect_ratio: str
    rotation: int
    display_width: int
    display_height: int
    frame_rate: float
    frame_rate_exact: str
    pix_fmt: str | None
    bit_depth: int | None
    color_transfer: str | None
    color_primaries: str | None
    field_order: str
    frames: int
    bit_rate: int | None
    keyframe_interval: float | None
    keyframe_interval_max: float | None

    @property
    def is_hdr(self) -> bool:
        return self.color_transfer in HDR_TRANSFERS

    @property
    def is_interlaced(self) -> bool:
        return self.field_order in {"tt", "bb", "tb", "bt"}


class AudioStreamInfo(BaseModel):
    """One audio stream."""

    index: int
    codec: str
    profile: str | None
    sample_rate: int
    channels: int
    layout: str | None
    bit_rate: int | None
    language: str | None


class MediaInfo(BaseModel):
    """Everything ReelForge needs to know about an input before working on it."""

    path: str
    container: str
    size_bytes: int
    duration: float
    bit_rate: int | None
    fast_start: bool | None
    video: list[VideoStreamInfo]
    audio: list[AudioStreamInfo]
    other_streams: list[str]


def check_readable_file(path: Path) -> None:
    """Raise :class:`InputError` unless ``path`` is an existing, non-empty regular file."""
    if not path.exists():
        raise InputError("no such file", path=path)
    if path.is_dir():
        raise InputError("is a directory, not a media file", path=path)
    if not path.is_file():
        raise InputError("is not a regular file", path=path)
    if path.stat().st_size == 0:
        raise InputError("is empty (0 bytes)", path=path)


def probe(path: str | Path) -> MediaInfo:
    """Probe ``path``; see the module docstring for the error contract."""
    path = Path(path)
    check_readable_file(path)
    fast_start: bool | None = None
    if mp4.looks_like_isobmff(path):
        try:
            boxes = mp4.top_level_boxes(path)
        except mp4.BoxError as exc:
            raise InputError(f"broken MP4: {exc}", path=path) from None
        fast_start = mp4.is_fast_start(boxes)
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise InputError(f"not a media file that can be read ({_short(exc)})", path=path) from None
    with container:
        video = [_video_info(container, s) for s in container.streams.video]
        audio = [_audio_info(s) for s in container.streams.audio]
        others = [
            f"{s.index}:{s.type}:{getattr(s.codec_context, 'name', None) or 'unknown'}"
            for s in container.streams
            if s.type not in ("video", "audio")
        ]
        duration = _duration(container)
        return MediaInfo(
            path=str(path),
            container=container.format.name,
            size_bytes=path.stat().st_size,
            duration=duration,
            bit_rate=container.bit_rate or None,
            fast_start=fast_start,
            video=video,
            audio=audio,
            other_streams=others,
        )


def _short(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(":")[0].strip() if ": '" in text else text.strip()


def _duration(container) -> float:
    if container.duration:
        return container.duration / 1_000_000
    best = 0.0
    for s in container.streams:
        if s.duration and s.time_base:
            best = max(best, float(s.duration * s.time_base))
    return best


def _ratio(value: Fraction | None) -> Fraction:
    return value if value and value.numerator and value.denominator else Fraction(1, 1)


def _video_info(container, stream) -> VideoStreamInfo:
    cc = stream.codec_context
    rotation = 0
    pix_fmt = cc.pix_fmt
    first = _first_frame(container, stream)
    if first is not None:
        rotation = round(getattr(first, "rotation", 0) or 0) % 360
        pix_fmt = pix_fmt or first.format.name
    sar = _ratio(stream.sample_aspect_ratio or cc.sample_aspect_ratio)
    width, height = cc.width, cc.height
    disp_w = round(width * sar)
    disp_h = height
    if rotation in (90, 270):
        disp_w, disp_h = disp_h, disp_w
    dar = Fraction(disp_w, disp_h) if disp_h else Fraction(0)
    rate = _nominal_rate(stream)
    bit_depth = None
    if pix_fmt:
        try:
            bit_depth = av.VideoFormat(pix_fmt).components[0].bits
        except (ValueError, av.FFmpegError):
            bit_depth = None
    duration = _duration(container)
    scan = _scan_packets(container, stream)
    if scan.frame_duration is not None:
        rate = _snap_rate(1 / scan.frame_duration, rate)
    frames = stream.frames or round(duration * float(rate))
    kf_mean, kf_max = scan.keyframe_interval
    return VideoStreamInfo(
        index=stream.index,
        codec=cc.name,
        profile=cc.profile,
        width=width,
        height=height,
        sample_aspect_ratio=f"{sar.numerator}:{sar.denominator}",
        display_aspect_ratio=f"{dar.numerator}:{dar.denominator}",
        rotation=rotation,
        display_width=disp_w,
        display_height=disp_h,
        frame_rate=round(float(rate), 3),
        frame_rate_exact=f"{rate.numerator}/{rate.denominator}",
        pix_fmt=pix_fmt,
        bit_depth=bit_depth,
        color_transfer=TRANSFER_NAMES.get(int(cc.color_trc or 2)),
        color_primaries=PRIMARIES_NAMES.get(int(cc.color_primaries or 2)),
        field_order=FIELD_ORDERS.get(int(cc.field_order or 0), "unknown"),
        frames=int(frames),
        bit_rate=cc.bit_rate or None,
        keyframe_interval=kf_mean,
        keyframe_interval_max=kf_max,
    )


def _nominal_rate(stream) -> Fraction:
    """The frame rate the video was made at.

    The stream's nominal rate (``r_frame_rate``) when it is plausible and within 10% of the
    average; otherwise the average. Gaps in timestamps (joined clips, dropped frames) pull
    the average down, and the nominal rate is what the encoder should produce.
    """
    avg, nominal = stream.average_rate, stream.guessed_rate or stream.base_rate
    if nominal and 1 <= nominal <= 120 and (not avg or abs(nominal / avg - 1) <= 0.1):
        return nominal
    return avg or nominal or Fraction(25)


def _first_frame(container, stream):
    try:
        container.seek(0)
        for frame in container.decode(stream):
            return frame
    except av.FFmpegError:
        return None
    return None


COMMON_RATES = [Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001),
                Fraction(30), Fraction(48), Fraction(50), Fraction(60000, 1001), Fraction(60),
                Fraction(120)]  # fmt: skip


@dataclass
class PacketScan:
    keyframe_interval: tuple[float | None, float | None]
    frame_duration: Fraction | None  # the most common distance between frames, seconds


def _scan_packets(container, stream) -> PacketScan:
    """Keyframe spacing and the usual frame duration over the first two minutes (demux only)."""
    times: list[float] = []
    stamps: list[int] = []
    try:
        container.seek(0)
        for packet in container.demux(stream):
            if packet.pts is None or packet.time_base is None:
                continue
            stamps.append(packet.pts)
            t = float(packet.pts * packet.time_base)
            if packet.is_keyframe:
                times.append(t)
            if t > KEYFRAME_SCAN_SECONDS:
                break
    except av.FFmpegError:
        pass
    stamps.sort()
    frame_duration = None
    deltas = Counter(b - a for a, b in itertools.pairwise(stamps) if b > a)
    if deltas and stream.time_base:
        mode = deltas.most_common(1)[0][0]
        # Mean of the regular steps: millisecond time bases alternate (41, 42, 42 ms...).
        regular = {d: n for d, n in deltas.items() if abs(d - mode) <= 0.1 * mode + 1}
        if sum(regular.values()) >= len(stamps) // 2:
            mean = Fraction(sum(d * n for d, n in regular.items()), sum(regular.values()))
            frame_duration = mean * stream.time_base
    times.sort()
    if len(times) < 2:
        return PacketScan((None, None), frame_duration)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return PacketScan((round(sum(gaps) / len(gaps), 3), round(max(gaps), 3)), frame_duration)


def _snap_rate(measured: Fraction, fallback: Fraction) -> Fraction:
    """A measured rate snapped to the nearest standard one within 0.04% (24 and 23.976 differ
    by 0.1%); implausible values are ignored."""
    if not 1 <= measured <= 240:
        return fallback
    closest = min(COMMON_RATES, key=lambda r: abs(measured / r - 1))
    if abs(measured / closest - 1) < 0.0004:
        return closest
    return measured.limit_denominator(1001)


def summary_rows(info: MediaInfo) -> list[tuple[str, str]]:
    """Label/value pairs for a human-readable table."""
    rows = [
        ("file", info.path),
        ("container", info.container),
        ("duration", f"{info.duration:.3f} s"),
        ("size", f"{info.size_bytes:,} bytes"),
        ("bit rate", f"{info.bit_rate / 1000:.0f} kb/s" if info.bit_rate else "unknown"),
    ]
    if info.fast_start is not None:
        rows.append(("fast start", "yes (moov before mdat)" if info.fast_start else "no"))
    for v in info.video:
        kf = (
            f"{v.keyframe_interval:.2f} s (max {v.keyframe_interval_max:.2f} s)"
            if (v.keyframe_interval)
            else "single keyframe or unknown"
        )
        rows += [
            (f"video #{v.index}", f"{v.codec} {v.profile or ''}".strip()),
            ("  size", f"{v.width}x{v.height}, SAR {v.sample_aspect_ratio}, "
                       f"DAR {v.display_aspect_ratio}, rotation {v.rotation}"),
            ("  displayed as", f"{v.display_width}x{v.display_height}"),
            ("  frame rate", f"{v.frame_rate:g} fps ({v.frame_rate_exact}), {v.frames} frames"),
            ("  pixels", f"{v.pix_fmt}, {v.bit_depth or '?'}-bit, transfer "
                         f"{v.color_transfer or 'unspecified'}, {v.field_order}"),
            ("  keyframe interval", kf),
        ]  # fmt: skip
    for a in info.audio:
        rows += [
            (f"audio #{a.index}", f"{a.codec} {a.profile or ''}".strip()),
            ("  format", f"{a.sample_rate} Hz, {a.channels} ch ({a.layout or '?'})"),
        ]
    for o in info.other_streams:
        rows.append(("other stream", o))
    return rows


def _audio_info(stream) -> AudioStreamInfo:
    cc = stream.codec_context
    layout = getattr(cc, "layout", None)
    return AudioStreamInfo(
        index=stream.index,
        codec=cc.name,
        profile=cc.profile,
        sample_rate=cc.sample_rate or 0,
        channels=cc.channels or 0,
        layout=layout.name if layout is not None else None,
        bit_rate=cc.bit_rate or None,
        language=stream.language,
    )
