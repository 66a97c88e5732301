"""Independent readers for what publish writes (m3u8, mpegdash, PyAV; no ReelForge code)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import av
import m3u8


@dataclass
class MediaPlaylist:
    path: Path
    init: Path
    segments: list[tuple[Path, float]]

    @property
    def duration(self) -> float:
        return sum(d for _, d in self.segments)


def read_media_playlist(path: Path) -> MediaPlaylist:
    pl = m3u8.load(str(path))
    assert pl.is_endlist and pl.playlist_type == "vod"
    base = path.parent
    init = base / pl.segment_map[0].uri
    return MediaPlaylist(path, init, [(base / s.uri, s.duration) for s in pl.segments])


def joined(pl: MediaPlaylist, dest: Path, upto: int | None = None) -> Path:
    """init + segments as one file, the way a player's buffer sees them."""
    with dest.open("wb") as fh:
        fh.write(pl.init.read_bytes())
        for seg, _ in pl.segments[:upto]:
            fh.write(seg.read_bytes())
    return dest


def single_segment(pl: MediaPlaylist, index: int, dest: Path) -> Path:
    with dest.open("wb") as fh:
        fh.write(pl.init.read_bytes())
        fh.write(pl.segments[index][0].read_bytes())
    return dest


def nal_types(packet_bytes: bytes) -> list[int]:
    """NAL unit types in a length-prefixed (AVCC) H.264 access unit."""
    types, pos = [], 0
    while pos + 4 <= len(packet_bytes):
        (n,) = struct.unpack_from(">I", packet_bytes, pos)
        pos += 4
        if n == 0 or pos + n > len(packet_bytes):
            break
        types.append(packet_bytes[pos] & 0x1F)
        pos += n
    return types


def keyframe_times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [
            round(float(p.pts * s.time_base), 3)
            for p in c.demux(s)
            if p.pts is not None and p.is_keyframe
        ]


def top_level_boxes(path: Path) -> list[str]:
    data = path.read_bytes()
    kinds, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, pos + 8)
        kinds.append(kind.decode("latin-1"))
        if size == 0:
            break
        pos += size
    return kinds
