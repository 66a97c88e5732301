"""Benchmark: fewer bytes at the same quality, measured on the shared clips in one run.

For each clip:

- the default (Apple) ladder published once per codec (h264, hevc, vp9, av1) at the
  ``balanced`` preset, VMAF on: BD-rate (VMAF, PCHIP) of each codec against H.264 and its
  encode time against H.264's;
- the per-title H.264 ladder against the fixed Apple H.264 ladder: BD-rate, and the
  analysis time against the per-title encode time.

Targets (from the issue): AV1 <= -30% at <= 3x H.264's encode time; HEVC <= -22%; VP9 <=
-20% at <= 3x; per-title <= -20% against the fixed ladder; analysis <= the final encode.
Clips are short and already compressed, so savings are smaller than on pristine masters.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reelforge.video.bdrate import bd_rate, report_points  # noqa: E402

MEDIA = Path(os.environ.get("REELFORGE_TEST_MEDIA", ROOT.parent / "shared" / "media")) / "video"
CLIPS = ["tears_of_steel_360p_10s.mp4", "sintel_480p_2s_h264.mp4", "bbb_720p_2s_h264.mp4",
         "obama_weekly_answers.mp4"]  # fmt: skip
CODECS = ("h264", "hevc", "vp9", "av1")
TARGETS = {"hevc": (-22.0, None), "vp9": (-20.0, 3.0), "av1": (-30.0, 3.0)}


def publish(src: Path, out: Path, *args: str) -> dict:
    cmd = [sys.executable, "-m", "reelforge.cli", "publish", str(src), "-o", str(out),
           "--force", "--json", "--no-thumbnails", "--no-fallback", *args]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"publish failed: {result.stderr.strip()}")
    return json.loads(result.stdout)


def fmt(value: float | None) -> str:
    return f"{value:+6.1f}%" if value is not None else "   n/a "


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="*", default=CLIPS)
    parser.add_argument("--preset", default="balanced")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rf-ladder-bench-"))
    summary: dict[str, list[tuple[float | None, float]]] = {c: [] for c in CODECS[1:]}
    per_title: list[tuple[float | None, float, float]] = []
    for clip in args.clips:
        src = MEDIA / clip
        reports = {c: publish(src, work / f"{clip}-{c}", "--codecs", c, "--preset", args.preset)
                   for c in CODECS}  # fmt: skip
        base_points = report_points(reports["h264"], "h264")
        base_time = reports["h264"]["totals"]["encode_seconds"]
        print(f"{clip}: H.264 ladder {len(base_points)} rungs, encode {base_time:.1f} s")
        for codec in CODECS[1:]:
            bd = bd_rate(report_points(reports[codec], codec), base_points)
            ratio = reports[codec]["totals"]["encode_seconds"] / base_time
            summary[codec].append((bd, ratio))
            print(f"  {codec:5s} BD-rate {fmt(bd)} against h264, encode time {ratio:4.2f}x")
        pt = publish(src, work / f"{clip}-pt", "--ladder", "per-title", "--preset", args.preset)
        bd = bd_rate(report_points(pt, "h264"), base_points)
        analysis, encode = pt["totals"]["analysis_seconds"], pt["totals"]["encode_seconds"]
        per_title.append((bd, analysis, encode))
        top = max((r for r in pt["renditions"] if r["kind"] == "video"),
                  key=lambda r: r["target_kbps"])  # fmt: skip
        print(
            f"  per-title BD-rate {fmt(bd)} against the fixed H.264 ladder; "
            f"{len(pt['per_title']['rungs'])} rungs, top {top['width']}x{top['height']} at "
            f"{top['average_kbps']:.0f} kb/s VMAF {top['vmaf']['mean']:.1f}; analysis "
            f"{analysis:.1f} s vs encode {encode:.1f} s ({analysis / encode:.2f}x)"
        )
    print("\nmedian over clips:")
    for codec, rows in summary.items():
        bds = [b for b, _ in rows if b is not None]
        bd = statistics.median(bds) if bds else None
        ratio = statistics.median(r for _, r in rows)
        goal_bd, goal_time = TARGETS[codec]
        ok = bd is not None and bd <= goal_bd and (goal_time is None or ratio <= goal_time)
        goal = f"target <= {goal_bd:.0f}%" + (f" at <= {goal_time:g}x" if goal_time else "")
        print(
            f"  {codec:5s} BD-rate {fmt(bd)}, encode time {ratio:4.2f}x  ({goal}: "
            f"{'OK' if ok else 'MISSED'})"
        )
    bds = [b for b, _, _ in per_title if b is not None]
    bd = statistics.median(bds) if bds else None
    worst = max(a / e for _, a, e in per_title)
    print(
        f"  per-title BD-rate {fmt(bd)} (target <= -20%: "
        f"{'OK' if bd is not None and bd <= -20 else 'MISSED'}); analysis/encode at most "
        f"{worst:.2f}x (target <= 1: {'OK' if worst <= 1 else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
