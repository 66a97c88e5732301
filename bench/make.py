"""Benchmark: `reelforge make` and publish's time to playable, in one run.

1. The test story (two speakers on the shared portraits, a footage scene with narration,
   offline voices, the viseme animator) made from an empty state folder; then made again
   unchanged; then again with one line of its last scene edited. Times are wall clock of
   the whole command; the ratios are against the first make. Targets: unchanged rerun
   < 10% of the first; the edit redoes only that line's voice and shot, the assembly and
   the publish.
2. `reelforge publish` of a 720p talking head with everything on (VMAF, thumbnails,
   fallback): the time until the stream is playable and until it is complete (from its
   report), against one hand-written ffmpeg command encoding the same ladder (one decode,
   split, x264 per rung: bench/publish.py's baseline), measured in the same run.
   Target: time to playable <= 1.15x that encode.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import publish as publish_bench  # noqa: E402  (bench/publish.py: the expert baseline)

from reelforge.media import ffmpeg  # noqa: E402

CLI = [sys.executable, "-m", "reelforge.cli"]
MEDIA = Path(os.environ.get("REELFORGE_TEST_MEDIA", ROOT.parent / "shared" / "media"))


def _make(story: Path, env: dict) -> tuple[float, dict]:
    t0 = time.monotonic()
    out = subprocess.run([*CLI, "make", str(story), "--json"], env=env, capture_output=True,
                         text=True, check=False)  # fmt: skip
    seconds = time.monotonic() - t0
    if out.returncode != 0:
        raise SystemExit(f"make failed: {out.stderr.strip()}")
    return seconds, json.loads(out.stdout.strip().splitlines()[-1])


def story_runs(work: Path) -> None:
    from test_make import write_story

    story = write_story(work / "story")
    state = work / "state"
    env = {**os.environ, "REELFORGE_STATE": str(state), "REELFORGE_CACHE_DIR": str(state / "v")}
    first, report = _make(story, env)
    again, cached = _make(story, env)
    write_story(story.parent, "Go and tie the boat down, and bring the spare lamp up from the "
                "cellar before the rain comes in over the island. We will sit up together "
                "and watch the sea come in.")  # fmt: skip
    edited, redone = _make(story, env)
    made = [s["step"] for s in redone["steps"] if s["status"] == "done"]
    print(
        f"1. make (the test story: {report['duration']:.1f} s of video, "
        f"{len(report['steps'])} steps)"
    )
    print(f"   first make              {first:7.1f} s   1.00")
    print(
        f"   unchanged rerun         {again:7.1f} s   {again / first:.3f}  "
        f"({sum(s['status'] == 'cached' for s in cached['steps'])} of "
        f"{len(cached['steps'])} cached; target < 0.10: "
        f"{'OK' if again / first < 0.10 else 'MISSED'})"
    )
    print(
        f"   one line edited         {edited:7.1f} s   {edited / first:.3f}  (redone: "
        f"{', '.join(sorted(made))})"
    )
    slowest = sorted(report["steps"], key=lambda s: -s["seconds"])[:3]
    print("   first make's slowest steps: " + ", ".join(
        f"{s['step']} {s['seconds']:.1f} s" for s in slowest))  # fmt: skip


def publish_runs(work: Path, repeat: int) -> None:
    src = MEDIA / "video" / "obama_weekly_answers.mp4"
    clip = work / "talk.mp4"
    subprocess.run([ffmpeg.ffmpeg_exe(), "-v", "error", "-y", "-stream_loop", "2", "-i",
                    str(src), "-c", "copy", str(clip)], check=True)  # fmt: skip
    fps = 29.97
    ladder = work / "ladder.json"
    ladder.write_text(json.dumps([{"width": w, "height": h, "bitrate_kbps": k}
                                  for w, h, k in publish_bench.RUNGS]))  # fmt: skip
    expert, playable, complete = [], [], []
    for i in range(repeat):
        base = work / f"expert{i}"
        base.mkdir()
        t0 = time.monotonic()
        subprocess.run(publish_bench.single_command(clip, base, fps), check=True,
                       capture_output=True)  # fmt: skip
        expert.append(time.monotonic() - t0)
        out = work / f"pub{i}"
        t0 = time.monotonic()
        subprocess.run([*CLI, "publish", str(clip), "-o", str(out), "--ladder", str(ladder),
                        "--json"], check=True, capture_output=True)  # fmt: skip
        wall = time.monotonic() - t0
        totals = json.loads((out / "report.json").read_text())["totals"]
        playable.append(totals.get("playable_seconds") or wall)
        complete.append(totals.get("complete_seconds") or wall)
        shutil.rmtree(base)
        shutil.rmtree(out)
    e, p, c = (statistics.median(x) for x in (expert, playable, complete))
    print(f"\n2. publish, everything on ({clip.name}, 11.6 s 720p, 4 rungs; median of {repeat})")
    print(f"   one expert ffmpeg encode  {e:6.1f} s   1.00")
    print(
        f"   publish: playable         {p:6.1f} s   {p / e:.2f}  (target <= 1.15: "
        f"{'OK' if p / e <= 1.15 else 'MISSED'})"
    )
    print(f"   publish: complete         {c:6.1f} s   {c / e:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="publish runs (median)")
    parser.add_argument("--only", choices=("make", "publish"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reelforge-bench-make-") as tmp:
        work = Path(tmp)
        if args.only in (None, "make"):
            story_runs(work)
        if args.only in (None, "publish"):
            publish_runs(work, args.repeat)


if __name__ == "__main__":
    main()
