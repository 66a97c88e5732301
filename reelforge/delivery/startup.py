"""What the player page inlines so playback starts without a walk of round trips.

Contract: :func:`bootstrap` reads a stream folder's ``master.m3u8`` and returns
``{"startUri": uri, "files": {relative URI: {"text": ...} | {"b64": ...}}}``: the master
playlist, the media playlist of the lowest-bandwidth H.264 rung (where the player starts;
``startUri`` names it as the master does) and of the default audio rendition, their init
segments and, when together they fit in ``media_budget`` bytes, the first media segment
of each. URIs are relative to the master.
A player that takes these from the page shows its first frame without a single network
request of its own; the page pays for the bytes, once, on a connection already open.
Anything unreadable, or past ``MAX_INLINE`` bytes in all, is left to the network (an
empty or partial result). The origin passes a reader that asks its access rule, so
nothing is inlined that the viewer could not fetch. Nothing here writes.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from reelforge.layout import MASTER

MAX_INLINE = 384 * 1024  # base64 and text, in all
MEDIA_BUDGET = 96 * 1024  # the first video and audio segments together, raw bytes
ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def _attrs(line: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in ATTR.findall(line.split(":", 1)[1])}


def _resolve(base: str, uri: str) -> str | None:
    """``uri`` relative to the file ``base`` (both relative to the stream folder), or None
    for absolute URIs and paths that climb out of the folder."""
    if "://" in uri or uri.startswith("/"):
        return None
    parts: list[str] = []
    for part in (PurePosixPath(base).parent / uri).parts:
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def _disk_reader(stream: Path) -> Callable[[str], bytes | None]:
    def read(rel: str) -> bytes | None:
        try:
            return (stream / rel).read_bytes()
        except OSError:
            return None

    return read


class _Inline:
    """The files collected so far, keyed by URI relative to the master, within a budget."""

    def __init__(self, read: Callable[[str], bytes | None]) -> None:
        self._read = read
        self.files: dict[str, dict] = {}
        self.total = 0

    def read(self, rel: str | None, binary: bool) -> bytes | str | None:
        data = self._read(rel) if rel is not None else None
        if data is None or binary:
            return data
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return None

    def add(self, key: str, data: bytes | str) -> bool:
        cost = len(data) if isinstance(data, str) else (len(data) + 2) // 3 * 4
        if self.total + cost > MAX_INLINE:
            return False
        self.files[key] = ({"text": data} if isinstance(data, str)
                           else {"b64": base64.b64encode(data).decode("ascii")})  # fmt: skip
        self.total += cost
        return True


def _playlist_parts(text: str) -> tuple[str | None, str | None]:
    """The init segment URI and the first media segment URI of a media playlist."""
    init = first = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#EXT-X-MAP:"):
            init = _attrs(line).get("URI")
        elif line and not line.startswith("#"):
            first = line
            break
    return init, first


def bootstrap(stream: Path | None, media_budget: int = MEDIA_BUDGET,
              read: Callable[[str], bytes | None] | None = None) -> dict:  # fmt: skip
    """The start-up files of the stream folder ``stream``, read through ``read`` (a path
    relative to the stream folder -> its bytes, or None when it may not be read) when
    given, else from the disk."""
    if read is None:
        if stream is None:
            raise ValueError("bootstrap needs a stream folder or a reader")
        read = _disk_reader(stream)
    inline = _Inline(read)
    master = inline.read(MASTER, binary=False)
    if not isinstance(master, str) or not inline.add(MASTER, master):
        return {}
    lines = master.splitlines()
    variants = []  # (bandwidth, uri, codecs)
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:") and i + 1 < len(lines):
            a = _attrs(line)
            variants.append((int(a.get("BANDWIDTH", "0")), lines[i + 1].strip(),
                             a.get("CODECS", "")))  # fmt: skip
    avc = [v for v in variants if "avc1" in v[2]] or variants
    if not avc:
        return {"files": inline.files}
    start_uri = min(avc)[1]
    wanted = [start_uri]
    for line in lines:
        if line.startswith("#EXT-X-MEDIA:") and "TYPE=AUDIO" in line:
            a = _attrs(line)
            if a.get("DEFAULT") == "YES" and a.get("URI"):
                wanted.append(a["URI"])
                break
    firsts: list[tuple[str, str | None]] = []  # (key, path) of each first media segment
    for uri in wanted:
        rel = _resolve(MASTER, uri)
        text = inline.read(rel, binary=False)
        if not isinstance(text, str) or not inline.add(uri, text):
            continue
        init_uri, first_uri = _playlist_parts(text)
        folder = PurePosixPath(uri).parent
        if init_uri:
            data = inline.read(_resolve(rel, init_uri), binary=True)
            if isinstance(data, bytes):
                inline.add(str(folder / init_uri), data)
        if first_uri:
            firsts.append((str(folder / first_uri), _resolve(rel, first_uri)))
    media = [(key, inline.read(rel, binary=True)) for key, rel in firsts]
    complete = all(isinstance(d, bytes) for _, d in media)  # both first segments, or none
    if media and complete and sum(len(d) for _, d in media) <= media_budget:
        for key, data in media:
            inline.add(key, data)
    return {"startUri": start_uri, "files": inline.files}
