"""Read the ISO base media file format (MP4, CMAF) at the box level.

Contract: pure parsing of bytes, no decoding. Used to check files for truncation and
fast-start layout, to cut fragmented MP4 into CMAF segments, and to read RFC 6381 codec
strings from the sample descriptions the encoder actually wrote.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CONTAINER_BOXES = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"moof", b"traf", b"edts"}
NON_SYNC_FLAG = 0x00010000


@dataclass(frozen=True)
class Box:
    """One box: its four-character type, where it starts, its total and header sizes."""

    type: bytes
    offset: int
    size: int
    header: int

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def body(self) -> int:
        return self.offset + self.header


class BoxError(ValueError):
    """The bytes are not a well-formed box structure."""


def _header(head: bytes | memoryview, pos: int, remaining: int) -> Box:
    """The box whose header starts ``head`` (at least 16 bytes or the rest of the data)
    found at offset ``pos`` with ``remaining`` bytes left in its container."""
    if len(head) < 8:
        raise BoxError(f"{len(head)} stray bytes at offset {pos}")
    size, kind = struct.unpack_from(">I4s", head)
    header = 8
    if size == 1:
        if len(head) < 16:
            raise BoxError(f"box {kind!r} at offset {pos} has a cut 64-bit size")
        (size,) = struct.unpack_from(">Q", head, 8)
        header = 16
    elif size == 0:
        size = remaining
    if size < header:
        raise BoxError(f"box {kind!r} at offset {pos} declares an impossible size {size}")
    if size > remaining:
        raise BoxError(
            f"ends inside box '{repr(bytes(kind))[2:-1]}' (declares {size} bytes at offset "
            f"{pos}, {remaining} present): truncated"
        )
    return Box(kind, pos, size, header)


def iter_boxes(data: bytes | memoryview, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """Yield the boxes laid end to end in ``data[start:end]``.

    Raises :class:`BoxError` when a box header is malformed or a box runs past ``end``.
    """
    end = len(data) if end is None else end
    pos = start
    while pos < end:
        box = _header(data[pos : min(pos + 16, end)], pos, end - pos)
        yield box
        pos += box.size


def top_level_boxes(path: Path) -> list[Box]:
    """The top-level boxes of a file, read from headers only (large ``mdat`` is skipped).

    Raises :class:`BoxError` if the file ends inside a box (a truncated file).
    """
    boxes: list[Box] = []
    file_size = path.stat().st_size
    with path.open("rb") as fh:
        pos = 0
        while pos < file_size:
            fh.seek(pos)
            box = _header(fh.read(16), pos, file_size - pos)
            boxes.append(box)
            pos += box.size
    return boxes


def looks_like_isobmff(path: Path) -> bool:
    """True when the file starts with an ``ftyp`` (or other common leading) box."""
    with path.open("rb") as fh:
        head = fh.read(12)
    return len(head) >= 8 and head[4:8] in {b"ftyp", b"styp", b"moov", b"free", b"wide", b"mdat"}


def is_fast_start(boxes: list[Box]) -> bool | None:
    """Whether ``moov`` precedes the first ``mdat``; None when either is missing."""
    kinds = [b.type for b in boxes]
    if b"moov" not in kinds or b"mdat" not in kinds:
        return None
    return kinds.index(b"moov") < kinds.index(b"mdat")


def find(data: bytes | memoryview, path: list[bytes], start: int = 0, end: int | None = None):
    """First box reached by following ``path`` of box types from ``data[start:end]``."""
    end = len(data) if end is None else end
    for box in iter_boxes(data, start, end):
        if box.type == path[0]:
            if len(path) == 1:
                return box
            inner = box.body + (_full_box_skip(box.type))
            return find(data, path[1:], inner, box.end)
    return None


def _full_box_skip(kind: bytes) -> int:
    # Boxes that carry a version/flags word or counts before their children.
    return {b"stsd": 8, b"meta": 4}.get(kind, 0)


@dataclass(frozen=True)
class Fragment:
    """One ``moof`` + ``mdat`` pair of a fragmented MP4 track."""

    offset: int  # of the moof (or of a leading styp)
    size: int  # through the end of the mdat
    decode_time: int  # tfdt, in track timescale units
    duration: int  # sum of sample durations, timescale units
    samples: int
    starts_with_sync: bool
    first_sample_end: int  # offset just past the first sample's data (for I-frame byte ranges)
    first_composition_offset: int = 0


@dataclass(frozen=True)
class TrackInfo:
    """What the init segment says about the single track of a CMAF file."""

    handler: str  # "vide" or "soun"
    timescale: int
    sample_entry: str  # avc1, hvc1, mp4a, ...
    codec: str  # RFC 6381 codecs string
    width: int = 0
    height: int = 0
    default_duration: int = 0
    default_flags: int = 0


@dataclass(frozen=True)
class FragmentedFile:
    """A fragmented MP4 file split into its init segment and fragments."""

    init_end: int
    track: TrackInfo
    fragments: list[Fragment]


def read_fragmented(path: Path) -> FragmentedFile:
    """Parse a single-track fragmented MP4 written with ``empty_moov`` and ``default_base_moof``."""
    data = path.read_bytes()
    boxes = list(iter_boxes(data))
    moov = next((b for b in boxes if b.type == b"moov"), None)
    if moov is None:
        raise BoxError("no moov box")
    track = read_track_info(data, moov)
    fragments: list[Fragment] = []
    i = 0
    init_end = moov.end
    while i < len(boxes):
        box = boxes[i]
        if box.type == b"moof":
            mdat = boxes[i + 1] if i + 1 < len(boxes) else None
            if mdat is None or mdat.type != b"mdat":
                raise BoxError(f"moof at offset {box.offset} is not followed by mdat")
            fragments.append(_read_fragment(data, box, mdat, track))
            i += 2
            continue
        i += 1
    return FragmentedFile(init_end=init_end, track=track, fragments=fragments)


def _read_fragment(data: bytes, moof: Box, mdat: Box, track: TrackInfo) -> Fragment:
    traf = find(data, [b"traf"], moof.body, moof.end)
    if traf is None:
        raise BoxError(f"moof at offset {moof.offset} has no traf")
    default_duration = track.default_duration
    default_flags = track.default_flags
    default_size = 0
    decode_time = 0
    durations: list[int] = []
    sizes: list[int] = []
    first_flags: int | None = None
    first_cto = 0
    data_offset = 0
    for box in iter_boxes(data, traf.body, traf.end):
        ver_flags = struct.unpack_from(">I", data, box.body)[0]
        version, flags = ver_flags >> 24, ver_flags & 0xFFFFFF
        p = box.body + 4
        if box.type == b"tfhd":
            p += 4  # track_ID
            if flags & 0x1:
                p += 8
            if flags & 0x2:
                p += 4
            if flags & 0x8:
                default_duration = struct.unpack_from(">I", data, p)[0]
                p += 4
            if flags & 0x10:
                default_size = struct.unpack_from(">I", data, p)[0]
                p += 4
            if flags & 0x20:
                default_flags = struct.unpack_from(">I", data, p)[0]
        elif box.type == b"tfdt":
            fmt = ">Q" if version == 1 else ">I"
            decode_time = struct.unpack_from(fmt, data, p)[0]
        elif box.type == b"trun":
            count = struct.unpack_from(">I", data, p)[0]
            p += 4
            if flags & 0x1:
                data_offset = struct.unpack_from(">i", data, p)[0]
                p += 4
            if flags & 0x4:
                first_flags = struct.unpack_from(">I", data, p)[0]
                p += 4
            for n in range(count):
                duration, size, sflags = default_duration, default_size, default_flags
                if flags & 0x100:
                    duration = struct.unpack_from(">I", data, p)[0]
                    p += 4
                if flags & 0x200:
                    size = struct.unpack_from(">I", data, p)[0]
                    p += 4
                if flags & 0x400:
                    sflags = struct.unpack_from(">I", data, p)[0]
                    p += 4
                if flags & 0x800:
                    if n == 0 and not durations:
                        first_cto = struct.unpack_from(">i" if version else ">I", data, p)[0]
                    p += 4
                if n == 0 and first_flags is None:
                    first_flags = sflags
                durations.append(duration)
                sizes.append(size)
    if first_flags is None:
        first_flags = default_flags
    first_data = moof.offset + data_offset if data_offset else mdat.body
    return Fragment(
        offset=moof.offset,
        size=mdat.end - moof.offset,
        decode_time=decode_time,
        duration=sum(durations),
        samples=len(durations),
        starts_with_sync=not (first_flags & NON_SYNC_FLAG),
        first_sample_end=first_data + (sizes[0] if sizes else 0),
        first_composition_offset=first_cto,
    )


def shift_composition_offsets(buf: bytearray, moof_at: int, shift: int) -> None:
    """Subtract ``shift`` from every sample's composition offset in the moof at ``moof_at``.

    The ``trun`` boxes are rewritten in place as version 1 (signed offsets); sizes do not
    change. Used so that a video track's first presented frame starts at its decode time,
    as CMAF asks, instead of being delayed by the encoder's reordering depth.
    """
    moof = next(iter_boxes(buf, moof_at, moof_at + struct.unpack_from(">I", buf, moof_at)[0]))
    for traf in iter_boxes(buf, moof.body, moof.end):
        if traf.type != b"traf":
            continue
        for box in iter_boxes(buf, traf.body, traf.end):
            if box.type != b"trun":
                continue
            ver_flags = struct.unpack_from(">I", buf, box.body)[0]
            version, flags = ver_flags >> 24, ver_flags & 0xFFFFFF
            if not flags & 0x800:
                continue
            count = struct.unpack_from(">I", buf, box.body + 4)[0]
            p = box.body + 8 + (4 if flags & 0x1 else 0) + (4 if flags & 0x4 else 0)
            per_sample = 4 * sum(bool(flags & f) for f in (0x100, 0x200, 0x400, 0x800))
            cto_at = 4 * sum(bool(flags & f) for f in (0x100, 0x200, 0x400))
            for n in range(count):
                at = p + n * per_sample + cto_at
                value = struct.unpack_from(">i" if version else ">I", buf, at)[0]
                struct.pack_into(">i", buf, at, value - shift)
            struct.pack_into(">I", buf, box.body, (1 << 24) | flags)


def read_track_info(data: bytes, moov: Box) -> TrackInfo:
    """Timescale, handler, sample entry and codec string of the first track in ``moov``."""
    mdhd = find(data, [b"trak", b"mdia", b"mdhd"], moov.body, moov.end)
    hdlr = find(data, [b"trak", b"mdia", b"hdlr"], moov.body, moov.end)
    stsd = find(data, [b"trak", b"mdia", b"minf", b"stbl", b"stsd"], moov.body, moov.end)
    if mdhd is None or hdlr is None or stsd is None:
        raise BoxError("moov lacks mdhd, hdlr or stsd")
    version = data[mdhd.body]
    timescale = struct.unpack_from(">I", data, mdhd.body + (20 if version == 1 else 12))[0]
    handler = data[hdlr.body + 8 : hdlr.body + 12].decode("latin-1")
    entry = next(iter_boxes(data, stsd.body + 8, stsd.end))
    kind = entry.type.decode("latin-1")
    width = height = 0
    if handler == "vide":
        width, height = struct.unpack_from(">HH", data, entry.body + 24)
        children_at = entry.body + 78
    else:
        children_at = entry.body + 28
    codec = codec_string(data, entry, children_at)
    trex = find(data, [b"mvex", b"trex"], moov.body, moov.end)
    default_duration = default_flags = 0
    if trex is not None:
        _, _, _, default_duration, _, default_flags = struct.unpack_from(">IIIIII", data, trex.body)
    return TrackInfo(
        handler, timescale, kind, codec, width, height, default_duration, default_flags
    )


def codec_string(data: bytes, entry: Box, children_at: int) -> str:
    """RFC 6381 ``codecs`` value for a sample entry, from its configuration box."""
    kind = entry.type.decode("latin-1")
    children = {b.type: b for b in iter_boxes(data, children_at, entry.end)}
    if kind in ("avc1", "avc3") and b"avcC" in children:
        c = children[b"avcC"].body
        return f"{kind}.{data[c + 1]:02X}{data[c + 2]:02X}{data[c + 3]:02X}"
    if kind in ("hvc1", "hev1") and b"hvcC" in children:
        return _hevc_codec(kind, data, children[b"hvcC"].body)
    if kind == "vp09" and b"vpcC" in children:
        c = children[b"vpcC"].body + 4
        profile, level, bits = data[c], data[c + 1], data[c + 2] >> 4
        return f"vp09.{profile:02d}.{level:02d}.{bits:02d}"
    if kind == "av01" and b"av1C" in children:
        c = children[b"av1C"].body
        profile = data[c + 1] >> 5
        level = data[c + 1] & 0x1F
        tier = "H" if data[c + 2] & 0x80 else "M"
        high_bitdepth, twelve = data[c + 2] & 0x40, data[c + 2] & 0x20
        bits = 12 if (profile == 2 and high_bitdepth and twelve) else (10 if high_bitdepth else 8)
        return f"av01.{profile}.{level:02d}{tier}.{bits:02d}"
    if kind == "mp4a":
        esds = children.get(b"esds")
        if esds is not None:
            return _mp4a_codec(data, esds)
        return "mp4a.40.2"
    if kind == "Opus":
        return "opus"
    return kind


def _hevc_codec(kind: str, data: bytes, c: int) -> str:
    b = data[c + 1]
    space = ("", "A", "B", "C")[b >> 6]
    tier = "H" if b & 0x20 else "L"
    profile_idc = b & 0x1F
    compat = struct.unpack_from(">I", data, c + 2)[0]
    compat_rev = int(f"{compat:032b}"[::-1], 2)
    constraints = data[c + 6 : c + 12].rstrip(b"\x00")
    level = data[c + 12]
    parts = [kind, f"{space}{profile_idc}", f"{compat_rev:X}", f"{tier}{level}"]
    parts += [f"{x:X}" for x in constraints]
    return ".".join(parts)


def _mp4a_codec(data: bytes, esds: Box) -> str:
    p = esds.body + 4
    end = esds.end

    def descriptor(pos: int) -> tuple[int, int, int]:
        tag = data[pos]
        pos += 1
        length = 0
        for _ in range(4):
            byte = data[pos]
            pos += 1
            length = (length << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        return tag, length, pos

    while p < end:
        tag, length, body = descriptor(p)
        if tag == 0x03:  # ES_Descriptor
            flags = data[body + 2]
            p = body + 3 + (2 if flags & 0x80 else 0)
            if flags & 0x40:
                p += 1 + data[p]
            if flags & 0x20:
                p += 2
            continue
        if tag == 0x04:  # DecoderConfigDescriptor
            oti = data[body]
            inner_tag, _, inner = descriptor(body + 13)
            if oti == 0x40 and inner_tag == 0x05:
                aot = data[inner] >> 3
                if aot == 31:
                    aot = 32 + (((data[inner] & 0x07) << 3) | (data[inner + 1] >> 5))
                return f"mp4a.40.{aot}"
            return f"mp4a.{oti:02X}"
        p = body + length
    return "mp4a.40.2"


def offset_fragments(buf: bytearray, decode_delta: int, first_sequence: int) -> int:
    """Move every fragment in ``buf`` (a media segment: ``styp``, then ``moof`` + ``mdat``
    pairs) later by ``decode_delta`` timescale units (each ``tfdt``) and number the
    fragments ``first_sequence``, ``first_sequence + 1``, ... (each ``mfhd``), in place:
    sizes do not change. Returns how many fragments there were. Used to join segments
    packaged from separately encoded chunks of one track. Raises :class:`BoxError` when a
    32-bit ``tfdt`` cannot hold the time."""
    moved = 0
    for moof in iter_boxes(buf):
        if moof.type != b"moof":
            continue
        for box in iter_boxes(buf, moof.body, moof.end):
            if box.type == b"mfhd":
                struct.pack_into(">I", buf, box.body + 4, first_sequence + moved)
            elif box.type == b"traf":
                for inner in iter_boxes(buf, box.body, box.end):
                    if inner.type != b"tfdt":
                        continue
                    version = buf[inner.body]
                    fmt = ">Q" if version == 1 else ">I"
                    (time,) = struct.unpack_from(fmt, buf, inner.body + 4)
                    if version != 1 and time + decode_delta >= 1 << 32:
                        raise BoxError("a 32-bit tfdt cannot hold the joined decode time")
                    struct.pack_into(fmt, buf, inner.body + 4, time + decode_delta)
        moved += 1
    return moved


def sample_entry(init: bytes) -> bytes:
    """The bytes of the first track's sample entry (``avc1``, ``hvc1``, ``vp09``, ``av01``,
    ``mp4a``...) in an init segment: the codec configuration record with what frames it
    describes (size, depth, colour). Two tracks with equal sample entries decode alike."""
    moov = next((b for b in iter_boxes(init) if b.type == b"moov"), None)
    if moov is None:
        raise BoxError("no moov box")
    stsd = find(init, [b"trak", b"mdia", b"minf", b"stbl", b"stsd"], moov.body, moov.end)
    if stsd is None:
        raise BoxError("moov lacks stsd")
    entry = next(iter_boxes(init, stsd.body + 8, stsd.end))
    return bytes(init[entry.offset : entry.end])
