"""Versioned streams: publish a new version beside the old, switch a pointer, clean up.

Contract: a *stream folder* holds one folder per version (``v20261125T101500Z-1a2b``, each
a complete publish whose files are never changed again) and, at its top, the pointer
files players start from: ``master.m3u8`` and ``manifest.mpd`` (the current version's,
with every URI prefixed by the version folder: a ``<BaseURL>`` in the MPD), and
``current.json`` (which version, since when, and the history of versions). :func:`switch`
replaces each pointer file atomically (written beside it, then renamed), so a player or a
cache sees either the old version or the new one, never a mix, and nothing needs
invalidating: version folders are immutable, and only the pointers are short-lived.
:func:`collect_garbage` removes versions that nothing has pointed to for ``grace``
seconds (players that loaded an old master keep working for that long).
"""

from __future__ import annotations

import json
import re
import shutil
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from reelforge.errors import InputError
from reelforge.fsutil import write_text_atomic
from reelforge.layout import CURRENT, MASTER, MPD, VERSION, new_version_name

__all__ = ["CURRENT", "VERSION", "collect_garbage", "new_version_name", "read_current", "switch"]
DASH_NS = "urn:mpeg:dash:schema:mpd:2011"


def read_current(stream: Path) -> dict:
    path = stream / CURRENT
    if not path.is_file():
        return {"version": None, "history": []}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise InputError("pointer file is unreadable", path=path) from None


def _prefix_playlist(text: str, version: str) -> str:
    """Prefix every URI of an HLS playlist (URI lines and URI="..." attributes)."""
    out = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            line = f"{version}/{line}"
        elif 'URI="' in line:
            line = re.sub(r'URI="(?![a-z]+://|/)', f'URI="{version}/', line)
        out.append(line)
    return "\n".join(out) + "\n"


def _prefix_mpd(text: str, version: str) -> str:
    ET.register_namespace("", DASH_NS)
    root = ET.fromstring(text)
    base = ET.Element(f"{{{DASH_NS}}}BaseURL")
    base.text = f"{version}/"
    children = list(root)
    at = next((i for i, c in enumerate(children) if not c.tag.endswith("ProgramInformation")), 0)
    root.insert(at, base)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode")


def switch(stream: Path, version: str, now: float | None = None) -> dict:
    """Point the stream at ``version`` (a complete publish inside it); returns current.json."""
    folder = stream / version
    if not VERSION.match(version) or not (folder / MASTER).is_file():
        raise InputError("is not a published version", path=folder)
    now = time.time() if now is None else now
    state = read_current(stream)
    history = [h for h in state.get("history", []) if h["version"] != version]
    for h in history:
        if h["version"] == state.get("version"):
            h.setdefault("superseded_at", now)
    history.append({"version": version, "published_at": now})
    write_text_atomic(stream / MASTER,
                      _prefix_playlist((folder / MASTER).read_text(), version))  # fmt: skip
    if (folder / MPD).is_file():
        write_text_atomic(stream / MPD, _prefix_mpd((folder / MPD).read_text(), version))
    state = {"version": version, "switched_at": now, "history": history}
    write_text_atomic(stream / CURRENT, json.dumps(state, indent=2))
    return state


def collect_garbage(stream: Path, grace: float, now: float | None = None,
                    dry_run: bool = False) -> list[str]:  # fmt: skip
    """Remove versions superseded more than ``grace`` seconds ago; returns their names.
    Version folders the history does not know (an interrupted publish) count from their
    modification time."""
    now = time.time() if now is None else now
    state = read_current(stream)
    current = state.get("version")
    superseded = {h["version"]: h.get("superseded_at") for h in state.get("history", [])}
    removed = []
    for folder in sorted(p for p in stream.iterdir() if p.is_dir() and VERSION.match(p.name)):
        if folder.name == current:
            continue
        since = superseded.get(folder.name) or folder.stat().st_mtime
        if now - since >= grace:
            removed.append(folder.name)
            if not dry_run:
                shutil.rmtree(folder)
    if removed and not dry_run:
        state["history"] = [h for h in state.get("history", []) if h["version"] not in removed]
        write_text_atomic(stream / CURRENT, json.dumps(state, indent=2))
    return removed
