"""What the player page inlines so playback starts with fewer round trips.

Contract: :func:`bootstrap` reads a stream folder's ``master.m3u8`` and returns
``{"startLevel": i, "files": {relative URI: {"text": ...} | {"b64": ...}}}``: the master
playlist, the media playlist of the lowest-bandwidth H.264 rung (where the player starts,
``startLevel`` its index among the variants) and of the default audio rendition, and
their init segments, with URIs relative to the master. A player that takes these from
the page makes its first request for a media segment instead of walking master, media
playlist and init segment one round trip at a time. Anything unreadable, or over
``MAX_INLINE`` bytes in all, is left to the network (an empty or partial result).
"""

from __future__ import annotations

import base64
import re
from pathlib import Path, PurePosixPath

MAX_INLINE = 256 * 1024
ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def _attrs(line: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in ATTR.findall(line.split(":", 1)[1])}


def _resolve(base: str, uri: str) -> str | None:
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


def bootstrap(stream: Path) -> dict:
    master_path = stream / "master.m3u8"
    try:
        master = master_path.read_text(encoding="utf-8")
    except OSError:
        return {}
    files: dict[str, dict] = {"master.m3u8": {"text": master}}
    lines = master.splitlines()
    variants = []  # (bandwidth, index, uri, codecs)
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:") and i + 1 < len(lines):
            a = _attrs(line)
            variants.append((int(a.get("BANDWIDTH", "0")), len(variants), lines[i + 1].strip(),
                             a.get("CODECS", "")))  # fmt: skip
    avc = [v for v in variants if "avc1" in v[3]] or variants
    if not avc:
        return {"files": files}
    _, start_level, start_uri, _ = min(avc)
    wanted = [start_uri]
    for line in lines:
        if line.startswith("#EXT-X-MEDIA:") and "TYPE=AUDIO" in line:
            a = _attrs(line)
            if a.get("DEFAULT") == "YES" and a.get("URI"):
                wanted.append(a["URI"])
                break
    total = len(master)
    for uri in wanted:
        rel = _resolve("master.m3u8", uri)
        try:
            text = (stream / rel).read_text(encoding="utf-8") if rel else None
        except OSError:
            text = None
        if text is None or total + len(text) > MAX_INLINE:
            continue
        files[uri] = {"text": text}
        total += len(text)
        for line in text.splitlines():
            if line.startswith("#EXT-X-MAP:"):
                init_uri = _attrs(line).get("URI", "")
                init_rel = _resolve(rel, init_uri)
                try:
                    data = (stream / init_rel).read_bytes() if init_rel else None
                except OSError:
                    data = None
                if data is not None and total + len(data) * 4 // 3 <= MAX_INLINE:
                    key = str(PurePosixPath(uri).parent / init_uri)
                    files[key] = {"b64": base64.b64encode(data).decode("ascii")}
                    total += len(data) * 4 // 3
    return {"startLevel": start_level, "files": files}
