"""A progressive, fast-start MP4 for players without adaptive streaming.

Contract: :func:`write_fallback` remuxes an already encoded rendition and the audio track
(no re-encode) into one MP4 whose ``moov`` precedes ``mdat``.
"""

from __future__ import annotations

from pathlib import Path

from reelforge.layout import content_name
from reelforge.media import ffmpeg


def write_fallback(video: Path | None, audio: Path | None, outdir: Path, stem: str) -> str:
    """Write ``<stem>-<hash>.mp4`` (or ``.m4a`` for audio only) and return its name."""
    inputs = [p for p in (video, audio) if p is not None]
    if not inputs:
        raise ValueError("nothing to put in a fallback file")
    suffix = ".mp4" if video is not None else ".m4a"
    tmp = outdir / f".{stem}.partial{suffix}"
    args: list[str] = []
    for p in inputs:
        args += ["-i", str(p)]
    for i in range(len(inputs)):
        args += ["-map", f"{i}"]
    args += ["-c", "copy", "-movflags", "+faststart", "-f", "mp4", str(tmp)]
    ffmpeg.run(args, subject=inputs[0])
    name = content_name(stem, tmp.read_bytes(), suffix)
    tmp.rename(outdir / name)
    return name
