"""WebVTT subtitles: read and check a file, cut it into HLS segments on the stream's timeline.

Contract: :func:`read_vtt` parses a WebVTT file as the W3C format defines it (the
``WEBVTT`` signature, a header, ``STYLE`` and ``REGION`` blocks, ``NOTE`` comments, cues
with an optional identifier, ``[hh:]mm:ss.ttt --> [hh:]mm:ss.ttt [settings]`` and a
payload) and raises a one-line :class:`~reelforge.errors.InputError` naming the file and
line for anything else (not UTF-8, no signature, a bad timestamp, a cue that ends before
it starts, no cue at all). Cue times are the input video's times (0 = its first frame).

:func:`package_subtitles` writes one language's track under ``subtitles/<lang>/``: one
WebVTT document per segment of a reference track (the video's, so subtitle segments line
up with the media segments), each starting with ``X-TIMESTAMP-MAP=MPEGTS:<90 kHz>,LOCAL:
00:00:00.000`` where MPEGTS is the reference's first ``tfdt`` in 90 kHz (so LOCAL time 0
is the media's time 0), each holding every cue shown during its segment (a cue that spans
segments is repeated in each with its own times, as RFC 8216 section 3.5 asks), and one
whole document (for DASH, which takes a single sidecar file). All names carry content
hashes (:mod:`reelforge.layout`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from reelforge import layout
from reelforge.errors import InputError
from reelforge.layout import content_name
from reelforge.video.package import Segment, Track, target_duration

TIMESTAMP = re.compile(r"^(?:(\d+):)?([0-5]\d):([0-5]\d)\.(\d{3})$")  # hours: as browsers read them
TIMING = re.compile(r"^(\S+)[ \t]+-->[ \t]+(\S+)(?:[ \t]+(.*))?$")
MPEGTS_RATE = 90_000
LOCAL_ZERO = "00:00:00.000"


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str  # the payload, lines joined with "\n"
    identifier: str | None = None
    settings: str = ""

    def block(self) -> str:
        timing = f"{timestamp(self.start)} --> {timestamp(self.end)}"
        timing += f" {self.settings}" if self.settings else ""
        return "\n".join([*([self.identifier] if self.identifier else []), timing, self.text])


@dataclass
class Subtitles:
    """A parsed WebVTT file: its cues (in start order) and its STYLE / REGION blocks."""

    cues: list[Cue]
    blocks: list[str] = field(default_factory=list)

    def document(self, cues: list[Cue] | None = None, header: str = "") -> str:
        """A WebVTT document of ``cues`` (all by default) with ``header`` lines."""
        parts = ["WEBVTT" + (f"\n{header}" if header else ""), *self.blocks]
        parts += [c.block() for c in (self.cues if cues is None else cues)]
        return "\n\n".join(parts) + "\n"


def timestamp(seconds: float) -> str:
    """``HH:MM:SS.mmm``."""
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def _seconds(text: str) -> float | None:
    m = TIMESTAMP.match(text)
    if not m:
        return None
    h, mi, s, ms = (int(g) if g else 0 for g in m.groups())
    return h * 3600 + mi * 60 + s + ms / 1000


def parse_vtt(text: str, path: str | Path) -> Subtitles:
    """Parse WebVTT ``text`` (from ``path``, for messages); see the module's contract."""

    def bad(line: int, why: str) -> InputError:
        return InputError(f"not a valid WebVTT file (line {line}: {why})", path=path)

    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    first = lines[0] if lines else ""
    if not (first == "WEBVTT" or first.startswith(("WEBVTT ", "WEBVTT\t"))):
        raise bad(1, "it must start with WEBVTT")
    i = 1
    while i < len(lines) and lines[i].strip():  # the header runs to the first blank line
        if "-->" in lines[i]:
            raise bad(i + 1, "a blank line must follow the WEBVTT header")
        i += 1
    cues: list[Cue] = []
    blocks: list[str] = []
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        start_line = i
        block = []
        while i < len(lines) and lines[i].strip():
            block.append(lines[i])
            i += 1
        head = block[0]
        if head == "NOTE" or head.startswith(("NOTE ", "NOTE\t")):
            continue
        if head.strip() in ("STYLE", "REGION") and "-->" not in "".join(block):
            if cues:
                raise bad(start_line + 1, f"{head.strip()} blocks must come before the cues")
            blocks.append("\n".join(block))
            continue
        identifier = None
        if "-->" not in head:
            if (len(block) < 2 or "-->" not in block[1]) and re.search(r"\d:\d\d", head):
                raise bad(start_line + 1, f"bad cue timing {head.strip()!r} (expected "
                          "[hh:]mm:ss.ttt --> [hh:]mm:ss.ttt)")  # fmt: skip
            identifier = head
            block = block[1:]
            if not block or "-->" not in block[0]:
                raise bad(start_line + 2, "expected a cue timing (start --> end)")
            start_line += 1
        m = TIMING.match(block[0].strip())
        start = _seconds(m.group(1)) if m else None
        end = _seconds(m.group(2)) if m else None
        if start is None or end is None:
            raise bad(start_line + 1, f"bad cue timing {block[0].strip()!r} "
                      "(expected [hh:]mm:ss.ttt --> [hh:]mm:ss.ttt)")  # fmt: skip
        if end <= start:
            raise bad(start_line + 1, "the cue ends before it starts")
        payload = block[1:]
        for k, line in enumerate(payload):
            if "-->" in line:
                raise bad(start_line + 2 + k, "'-->' in a cue's text (a missing blank line?)")
        cues.append(Cue(start, end, "\n".join(payload), identifier, (m.group(3) or "").strip()))
    if not cues:
        raise InputError("has no subtitle cues", path=path)
    cues.sort(key=lambda c: (c.start, c.end))
    return Subtitles(cues, blocks)


def read_vtt(path: Path) -> Subtitles:
    """Read and parse the WebVTT file ``path`` (see :func:`parse_vtt`)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError("subtitle file not found", path=path) from None
    except IsADirectoryError:
        raise InputError("is a folder, not a WebVTT file", path=path) from None
    except OSError as exc:
        raise InputError(f"cannot read the subtitle file ({exc.strerror})", path=path) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("not a valid WebVTT file (not UTF-8 text)", path=path) from None
    return parse_vtt(text, path)


def timestamp_map(reference: Track) -> str:
    """``X-TIMESTAMP-MAP=MPEGTS:m,LOCAL:00:00:00.000``: LOCAL 0 (the input's time 0) is
    where ``reference``'s first segment starts on the media timeline (its ``tfdt``)."""
    first = reference.segments[0].start_ticks if reference.segments else 0
    mpegts = round(first * MPEGTS_RATE / reference.timescale)
    return f"X-TIMESTAMP-MAP=MPEGTS:{mpegts},LOCAL:{LOCAL_ZERO}"


@dataclass
class TextTrack:
    """A packaged subtitle track: segmented WebVTT for HLS and one whole file for DASH."""

    id: str
    language: str
    name: str
    directory: str
    segments: list[Segment]
    sidecar: str  # the whole document's file name, in ``directory``
    cues: int
    dropped: int = 0  # cues that start after the media ends
    kind: str = "subtitles"

    @property
    def target_duration(self) -> int:
        return target_duration([s.duration for s in self.segments])

    @property
    def size(self) -> int:
        return sum(s.size for s in self.segments)

    def uri(self, name: str) -> str:
        return f"{self.directory}/{name}"


def package_subtitles(subs: Subtitles, language: str, name: str, reference: Track,
                      out: Path) -> TextTrack:  # fmt: skip
    """Write ``subs`` as ``language``'s track under ``out``, cut on ``reference``'s
    segments (see the module's contract)."""
    directory = layout.track_directory("subtitles", language)
    folder = out / directory
    folder.mkdir(parents=True, exist_ok=True)
    origin = reference.segments[0].start if reference.segments else 0.0
    end = origin + reference.duration
    kept = [c for c in subs.cues if c.start < end - origin]
    header = timestamp_map(reference)
    segments: list[Segment] = []
    for number, seg in enumerate(reference.segments):
        lo, hi = seg.start - origin, seg.start - origin + seg.duration
        shown = [c for c in kept if c.start < hi and c.end > lo]
        data = subs.document(shown, header).encode("utf-8")
        file = content_name(layout.segment_stem(number), data, ".vtt")
        (folder / file).write_bytes(data)
        segments.append(Segment(name=file, start=lo, duration=seg.duration, size=len(data),
                                start_ticks=round(lo * 1000),
                                duration_ticks=round(seg.duration * 1000)))  # fmt: skip
    whole = Subtitles(kept, subs.blocks).document().encode("utf-8")
    sidecar = content_name("subtitles", whole, ".vtt")
    (folder / sidecar).write_bytes(whole)
    return TextTrack(id=language, language=language, name=name, directory=directory,
                     segments=segments, sidecar=sidecar, cues=len(kept),
                     dropped=len(subs.cues) - len(kept))  # fmt: skip
