"""What the report page shows, read from a stream's folder and the step cache.

Contract: :func:`publish_charts` turns a publish report (``report.json``) and the stream's
media playlists into charts (:mod:`reelforge.web.charts`) and tables: VMAF against bit
rate per codec, each rung's bit rate segment by segment, VMAF per rung.
:func:`make_readings` turns a story's ``make.json`` into its voice readings (per turn:
backend, length, loudness) and sync readings (per shot: the sync meter's offset and
confidence), from each step's report in the step cache. Both read only inside the folder
given and never raise for a damaged or partial file: what cannot be read is left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reelforge.pipeline.cache import StepCache
from reelforge.web import charts


def _json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def segment_rates(folder: Path, playlist: str) -> list[tuple[float, float, float]]:
    """``(start s, end s, kbit/s)`` of each segment of a media playlist under ``folder``
    (sizes from ``EXT-X-BYTERANGE`` or the segment files)."""
    root = folder.resolve()
    path = (root / playlist).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return []
    out: list[tuple[float, float, float]] = []
    at, duration, length = 0.0, None, None
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line.startswith("#EXTINF:"):
                duration = float(line[8:].split(",")[0])
            elif line.startswith("#EXT-X-BYTERANGE:"):
                length = int(line[17:].split("@")[0])
            elif line and not line.startswith("#") and duration:
                segment = (path.parent / line).resolve()
                if length is None and segment.is_relative_to(root):
                    length = segment.stat().st_size
                if length is not None:
                    out.append((at, at + duration, length * 8 / duration / 1000))
                at, duration, length = at + duration, None, None
    except (OSError, ValueError):
        pass
    return out


def _codec(rendition: dict) -> str:
    return str(rendition.get("name", "")).split("-")[0] or str(rendition.get("codec", ""))


def publish_charts(folder: Path, report: dict) -> dict[str, Any]:
    """The report page's charts and tables for a published stream."""
    renditions = [r for r in report.get("renditions", []) if isinstance(r, dict)]
    video = [r for r in renditions if r.get("kind") == "video"]
    codecs = list(dict.fromkeys(_codec(r) for r in video))
    by_codec: dict[str, charts.Series] = {}
    for point in report.get("rate_quality") or []:
        if not isinstance(point, dict) or point.get("vmaf") is None:
            continue
        series = by_codec.setdefault(str(point.get("codec")), charts.Series(
            str(point.get("codec")), []))  # fmt: skip
        series.points.append((float(point["kbps"]), float(point["vmaf"])))
        series.notes.append(str(point.get("name", "")))
    for series in by_codec.values():
        order = sorted(range(len(series.points)), key=lambda i: series.points[i][0])
        series.points = [series.points[i] for i in order]
        series.notes = [series.notes[i] for i in order]
    rate_quality = charts.line_chart(
        "Rate-quality: VMAF against bit rate, per codec", "kbit/s", "VMAF",
        list(by_codec.values()), x_log=True, y_range=(0, 100), kind="rate-quality",
    ) if by_codec else None  # fmt: skip
    over_time = []
    for r in video:
        rates = segment_rates(folder, str(r.get("playlist", "")))
        points = [p for start, end, kbps in rates for p in ((start, kbps), (end, kbps))]
        if points:
            over_time.append(charts.Series(str(r.get("name")), points))
    bitrate = charts.line_chart(
        "Bit rate over time, per rung (each segment's size over its duration)", "seconds",
        "kbit/s", over_time, y_log=True, steps=True, kind="bitrate",
    ) if over_time else None  # fmt: skip
    bars = [(str(r.get("name")), float(r["vmaf"]["mean"]), codecs.index(_codec(r)))
            for r in video if isinstance(r.get("vmaf"), dict)
            and r["vmaf"].get("mean") is not None]  # fmt: skip
    vmaf = charts.bar_chart("VMAF per rung (mean over every frame)", "VMAF", bars,
                            kind="vmaf") if bars else None  # fmt: skip
    totals = report.get("totals") if isinstance(report.get("totals"), dict) else {}
    facts = [f"Stream {report['state']}" if report.get("state") else None,
             f"{totals['media_duration']:.1f} s of media" if totals.get("media_duration")
             else None,
             f"{totals['size_bytes'] / 1e6:.1f} MB in all" if totals.get("size_bytes") else None,
             f"published in {totals['wall_seconds']:.1f} s" if totals.get("wall_seconds")
             else None]  # fmt: skip
    extras = report.get("extras") or {}
    quality = extras.get("quality") if isinstance(extras, dict) else None
    return {"rate_quality": rate_quality, "bitrate": bitrate, "vmaf": vmaf,
            "quality_state": (quality or {}).get("state") if isinstance(quality, dict) else None,
            "video": video, "audio": [r for r in renditions if r.get("kind") == "audio"],
            "subtitles": [s for s in report.get("subtitles") or [] if isinstance(s, dict)],
            "summary": " · ".join(f for f in facts if f) + ".",
            "state": report.get("state")}  # fmt: skip


def make_readings(folder: Path, cache: StepCache) -> dict[str, Any] | None:
    """A story's voice and sync readings: ``make.json``'s steps with each one's report
    from the step cache (the voice's loudness per turn, the sync meter's per shot)."""
    made = _json(folder / "make.json")
    if not made:
        return None
    voices, syncs, steps = [], [], []
    for step in made.get("steps") or []:
        if not isinstance(step, dict):
            continue
        steps.append(step)
        try:
            found = cache.lookup(str(step.get("key", "")))
        except ValueError:
            found = None
        report = found.report if found is not None else {}
        if step.get("step") == "voice-turn":
            voices.append({"n": len(voices) + 1, **report})
        elif step.get("step") == "talk-shot":
            sync = report.get("sync") if isinstance(report.get("sync"), dict) else {}
            syncs.append({"n": len(syncs) + 1, "frames": report.get("frames"),
                          "fps": report.get("fps"), **sync})  # fmt: skip
    return {"title": made.get("title"), "languages": made.get("languages") or [],
            "duration": made.get("duration"), "seconds": made.get("seconds"),
            "steps": steps, "voices": voices, "syncs": syncs}  # fmt: skip
