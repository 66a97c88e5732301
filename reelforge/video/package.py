"""Cut fragmented MP4 tracks into CMAF segments named by content hash.

Contract: :func:`package_track` reads one single-track fragmented MP4 and writes, under
``outdir/<track dir>``, an init segment and media segments. Segments are groups of whole
fragments that break at the boundaries of a :class:`~reelforge.video.timeline.Timeline` (so
every video segment starts with an IDR), a trailing sliver shorter than :data:`MIN_TAIL` is
merged into the segment before it, and each file name carries a hash of its bytes so a CDN
may cache it forever.
The returned :class:`Track` holds the measured sizes, durations and bitrates that the
manifests and the report use.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from reelforge import layout
from reelforge.layout import content_name
from reelforge.media import mp4
from reelforge.video.timeline import Timeline

MIN_TAIL = 0.5  # seconds; a shorter last segment is merged into the one before
STYP = struct.pack(">I4s4sI4s4s", 24, b"styp", b"msdh", 0, b"msdh", b"msix")


@dataclass(frozen=True)
class IFrame:
    """Where an I-frame sits inside a segment file, for I-frame playlists."""

    offset: int
    length: int
    start: float


@dataclass
class Segment:
    """One media segment file."""

    name: str
    start: float
    duration: float
    size: int
    start_ticks: int
    duration_ticks: int
    iframes: list[IFrame] = field(default_factory=list)

    @property
    def bitrate(self) -> float:
        return self.size * 8 / self.duration if self.duration > 0 else 0.0


@dataclass
class Track:
    """A packaged CMAF track: an init segment and its media segments."""

    id: str
    kind: str  # "video" or "audio"
    directory: str  # relative to the output root, POSIX style
    init_name: str
    init_size: int
    codec: str
    timescale: int
    segments: list[Segment]
    width: int = 0
    height: int = 0
    frame_rate: float = 0.0
    frame_rate_exact: str = ""
    channels: int = 0
    sample_rate: int = 0
    language: str | None = None
    target_bitrate: int = 0  # bits per second asked of the encoder

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.segments)

    @property
    def size(self) -> int:
        return sum(s.size for s in self.segments)

    @property
    def average_bitrate(self) -> float:
        """Bits per second over the whole track (media segments only)."""
        return self.size * 8 / self.duration if self.duration > 0 else 0.0

    @property
    def target_duration(self) -> int:
        """HLS ``EXT-X-TARGETDURATION``: the longest segment, rounded to whole seconds."""
        return target_duration([s.duration for s in self.segments])

    @property
    def peak_bitrate(self) -> float:
        """The peak segment bit rate as RFC 8216 defines it: the highest bit rate of any
        run of consecutive segments lasting 0.5 to 1.5 target durations (a lone segment
        outside that range counts on its own), so short opening segments are measured
        together rather than each charged for a whole keyframe."""
        segs = self.segments
        low, high = 0.5 * self.target_duration, 1.5 * self.target_duration
        peak = 0.0
        for i in range(len(segs)):
            size = duration = 0.0
            for seg in segs[i:]:
                if duration and duration + seg.duration > high + 1e-6:
                    break
                size += seg.size
                duration += seg.duration
                if duration >= low - 1e-6 or len(segs) == 1:
                    peak = max(peak, size * 8 / duration)
        if not peak:  # every run is shorter than half a target duration
            peak = self.average_bitrate
        return peak

    def uri(self, name: str) -> str:
        return f"{self.directory}/{name}"


def target_duration(durations: list[float]) -> int:
    """The longest duration rounded to whole seconds, at least 1 (RFC 8216)."""
    return max(1, max((round(d) for d in durations), default=1))


def group_fragments(
    fragments: list[mp4.Fragment], timescale: int, timeline: Timeline
) -> list[list[mp4.Fragment]]:
    """Group fragments into segments that break at the timeline's boundaries."""
    tolerance = min(0.25, timeline.shortest / 4)
    groups: list[list[mp4.Fragment]] = []
    boundaries = timeline.boundaries()
    next_boundary = next(boundaries)
    for frag in fragments:
        start = frag.decode_time / timescale
        if not groups or start >= next_boundary - tolerance:
            groups.append([frag])
            while next_boundary - tolerance <= start:
                next_boundary = next(boundaries)
        else:
            groups[-1].append(frag)
    if len(groups) > 1:
        tail = sum(f.duration for f in groups[-1]) / timescale
        if tail < MIN_TAIL:
            groups[-2].extend(groups.pop())
    return groups


def package_track(
    source: Path,
    outdir: Path,
    *,
    track_id: str,
    kind: str,
    timeline: Timeline,
    directory: str | None = None,
) -> Track:
    """Write ``source``'s init and media segments under ``outdir/directory``."""
    parsed = mp4.read_fragmented(source)
    data = source.read_bytes()
    directory = directory or layout.track_directory(kind, track_id)
    target = outdir / directory
    target.mkdir(parents=True, exist_ok=True)
    init = data[: parsed.init_end]
    init_name = content_name(layout.INIT, init, ".mp4")
    (target / init_name).write_bytes(init)
    ts = parsed.track.timescale
    # Present the first frame at its decode time (CMAF): remove the B-frame reorder delay.
    shift = parsed.fragments[0].first_composition_offset if parsed.fragments else 0
    segments: list[Segment] = []
    for number, group in enumerate(group_fragments(parsed.fragments, ts, timeline)):
        body = bytearray(STYP)
        iframes: list[IFrame] = []
        for frag in group:
            at = len(body)
            body += data[frag.offset : frag.offset + frag.size]
            if shift:
                mp4.shift_composition_offsets(body, at, shift)
            if kind == "video" and frag.starts_with_sync:
                length = frag.first_sample_end - frag.offset
                iframes.append(IFrame(offset=at, length=length, start=frag.decode_time / ts))
        name = content_name(layout.segment_stem(number), bytes(body), ".m4s")
        (target / name).write_bytes(body)
        segments.append(
            Segment(
                name=name,
                start=group[0].decode_time / ts,
                duration=sum(f.duration for f in group) / ts,
                size=len(body),
                start_ticks=group[0].decode_time,
                duration_ticks=sum(f.duration for f in group),
                iframes=iframes,
            )
        )
    info = parsed.track
    return Track(
        id=track_id,
        kind=kind,
        directory=directory,
        init_name=init_name,
        init_size=len(init),
        codec=info.codec,
        timescale=ts,
        segments=segments,
        width=info.width,
        height=info.height,
    )
