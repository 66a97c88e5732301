"""Benchmark: chunked publish (``--chunk-seconds``) against one whole-title encode, in one run.

On a 2-minute title (a shared clip looped to 120 s with stream copy), in this process:

(u) an unchunked publish (one ffmpeg run for the ladder; rate control as today: ABR with
    the VBV cap, or the rungs' capped CRF);
(c1) a chunked publish on 1 worker (each chunk's encoders on their own threads);
(c2) a chunked publish on 2 workers (each encoder single-threaded).

Prints, per run, the encode's wall time and CPU seconds (this process and its children,
``resource.getrusage``, counted from the first stage after the probe to the start of
packaging: a chunked encode's rate calibration, chunks and audio; children count once they
are reaped, which a pool's workers are before packaging starts), the calibration's share,
and the per-rendition bitrate and VMAF; then the ratios: wall c1/u and c2/u, CPU c1/u and
c2/u (target <= 1.05 for the chunks themselves), and BD-rate (VMAF, PCHIP: the project's
bdrate module) of each chunked run against (u) (target within +-1%).

``--runner local`` (default) runs the chunks in this machine's process pool; ``--runner
celery`` sends them as tasks to the workers of the configured broker (``reelforge
worker``; the chunk folder, next to the output, must be on storage they share).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reelforge.media import ffmpeg  # noqa: E402
from reelforge.video.bdrate import compare_reports  # noqa: E402
from reelforge.video.ladder import Rung  # noqa: E402
from reelforge.video.publish import PublishOptions, publish  # noqa: E402

MEDIA = Path(os.environ.get("REELFORGE_TEST_MEDIA", ROOT.parent / "shared" / "media")) / "video"
CLIP = "tears_of_steel_360p_10s.mp4"
RUNGS = [(416, 234, 145), (416, 234, 300), (640, 360, 365), (640, 360, 800)]


def cpu_seconds() -> float:
    """User + system CPU of this process and of every child it has reaped."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class StageClock:
    """A Progress that notes the wall clock and CPU seconds at the start of each stage."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float, float]] = []

    def stage(self, name: str, total: float, unit: str = "") -> Callable[[float], None]:
        self.marks.append((name, time.monotonic(), cpu_seconds()))
        return lambda _done: None

    def span(self, first: str, until: str) -> tuple[float, float]:
        """(wall, CPU) seconds from the first stage named ``first`` to ``until``'s start."""
        start = next(m for m in self.marks if m[0] == first)
        end = next(m for m in self.marks if m[0] == until)
        return end[1] - start[1], end[2] - start[2]


def make_runner(kind: str, workers: int):
    """The chunk runner the bench uses: ``local`` (a process pool) or ``celery``."""
    if kind == "local":
        from reelforge.video.chunks import LocalRunner

        return LocalRunner(workers)
    if kind == "celery":
        from reelforge import config
        from reelforge.workers.celery import create_app
        from reelforge.workers.chunks import CeleryChunkRunner

        return CeleryChunkRunner(create_app(config.load()), workers)
    raise SystemExit(f"--runner must be local or celery, not {kind!r}")


def run(src: Path, out: Path, opts: PublishOptions, runner=None) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    clock = StageClock()
    t0, c0 = time.monotonic(), cpu_seconds()
    report = json.loads(publish(src, out, opts, clock, runner=runner).model_dump_json())
    first = "rate calibration" if opts.chunk_seconds else "encode"
    wall, cpu = clock.span(first, "package")
    calibration = clock.span("rate calibration", "encode (chunks)") if opts.chunk_seconds else (
        0.0, 0.0)  # fmt: skip
    return {"report": report, "encode_wall": wall, "encode_cpu": cpu,
            "calibration_wall": calibration[0], "calibration_cpu": calibration[1],
            "wall": time.monotonic() - t0, "cpu": cpu_seconds() - c0}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default=CLIP, help="a clip of the shared media's video folder")
    parser.add_argument("--seconds", type=float, default=120.0, help="the title's length")
    parser.add_argument("--chunk-seconds", type=float, default=16.0)
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--runner", default="local", help="local (default) or celery")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each (medians)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="reelforge-bench-workers-"))
    try:
        clip = MEDIA / args.clip
        src = work / "title.mp4"
        loops = max(0, round(args.seconds / 10.0) - 1)
        ffmpeg.run(["-stream_loop", str(loops), "-i", str(clip), "-t", f"{args.seconds:g}",
                    "-c", "copy", str(src)], subject=clip)  # fmt: skip
        rungs = [Rung(width=w, height=h, bitrate_kbps=b) for w, h, b in RUNGS]
        base = {"rungs": rungs, "ladder_name": "bench", "preset": args.preset, "poster": False,
                "thumbnails": False, "fallback": False}  # fmt: skip
        plans = {
            "u": (PublishOptions(**base), None),
            "c1": (PublishOptions(**base, chunk_seconds=args.chunk_seconds),
                   make_runner(args.runner, 1)),
            "c2": (PublishOptions(**base, chunk_seconds=args.chunk_seconds),
                   make_runner(args.runner, 2)),
        }  # fmt: skip
        runs: dict[str, list[dict]] = {k: [] for k in plans}
        for _ in range(args.repeat):  # interleaved: the machine's noise hits each alike
            for key, (opts, runner) in plans.items():
                runs[key].append(run(src, work / key, opts, runner))
        print(f"{args.clip} looped to {args.seconds:g} s, preset {args.preset}, chunks of "
              f"{args.chunk_seconds:g} s, runner {args.runner}, {len(RUNGS)} rungs")  # fmt: skip
        med = {k: {m: statistics.median(r[m] for r in v) for m in v[0] if m != "report"}
               for k, v in runs.items()}  # fmt: skip
        for key, m in med.items():
            report = runs[key][-1]["report"]
            chunks = report.get("chunks") or {}
            print(f"({key}) encode {m['encode_wall']:6.1f} s wall {m['encode_cpu']:6.1f} s CPU"
                  f" (calibration {m['calibration_wall']:4.1f} s wall "
                  f"{m['calibration_cpu']:5.1f} s CPU); publish {m['wall']:6.1f} s wall; "
                  f"{chunks.get('count', 1)} chunk(s) on {chunks.get('workers', 1)} "
                  f"worker(s)")  # fmt: skip
            for r in report["renditions"]:
                crf = (chunks.get("crf") or {}).get(r["name"])
                print(f"     {r['name']:22} {r['average_kbps']:7.1f} kb/s "
                      f"(target {r['target_kbps']}) VMAF {r['vmaf']['mean']:6.2f}"
                      + (f"  CRF {crf:g}" if crf is not None else ""))  # fmt: skip
        u = med["u"]
        print("ratios against (u):")
        for key in ("c1", "c2"):
            m = med[key]
            chunk_cpu = m["encode_cpu"] - m["calibration_cpu"]
            bd = compare_reports(runs[key][-1]["report"], runs["u"][-1]["report"])["overall"]
            print(f"  {key}: encode wall {m['encode_wall'] / u['encode_wall']:.2f}x, "
                  f"publish wall {m['wall'] / u['wall']:.2f}x; encode CPU "
                  f"{m['encode_cpu'] / u['encode_cpu']:.3f}x (chunks alone "
                  f"{chunk_cpu / u['encode_cpu']:.3f}x, calibration "
                  f"{m['calibration_cpu'] / u['encode_cpu']:.3f}x; target <= 1.05); "
                  f"BD-rate (VMAF) {bd['bd_rate_percent']:+.2f}% (target within +-1%)")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
