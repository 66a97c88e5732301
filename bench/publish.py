"""Benchmark: `reelforge publish` against hand-written ffmpeg baselines, in one run.

(a) reelforge publish, ladder only (no VMAF, thumbnails or fallback)
(b) one hand-written ffmpeg command: one decode, split, the same renditions
(c) one ffmpeg run per rung (the common naive way)
(d) reelforge publish with everything on (VMAF, poster, sprites, fallback)

Prints wall time (median of --repeat runs, interleaved; (d) --repeat-full runs) and peak
memory (RSS of the whole process tree, sampled every 20 ms), then a/b, a/c and d/b. For the
publishes also the time to playable: from the command's start until the output folder's
master.m3u8 appears (the stream is renamed into place whole, extras follow), polled every
5 ms; (d)'s time to complete is its wall time. Targets: a/b <= 1.10, a/c <= 0.85, time to
playable with everything on <= 1.15 b.
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
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reelforge.media import ffmpeg  # noqa: E402

MEDIA = Path(os.environ.get("REELFORGE_TEST_MEDIA", ROOT.parent / "shared" / "media"))
RUNGS = [(416, 234, 145), (640, 360, 365), (960, 540, 2000), (1280, 720, 3000)]
KEY = 2.0


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
        stack.extend(children.get(p, []))
    return total


def measure(cmds: list[list[str]], watch: Path | None = None) -> tuple[float, int, float | None]:
    """Run commands one after another; (wall seconds, peak tree RSS in bytes, seconds until
    ``watch`` existed, when given)."""
    peak = 0
    seen: list[float] = []
    start = time.monotonic()
    if watch is not None:
        shutil.rmtree(watch.parent, ignore_errors=True)
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                if watch.exists():
                    seen.append(time.monotonic() - start)
                    return
                time.sleep(0.005)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
    for cmd in cmds:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        done = threading.Event()

        def sample(pid: int = proc.pid, done: threading.Event = done) -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, tree_rss(pid))
                time.sleep(0.02)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        _, err = proc.communicate()
        done.set()
        t.join()
        if proc.returncode != 0:
            raise SystemExit(f"failed: {' '.join(cmd)}\n{err.decode()[-2000:]}")
    wall = time.monotonic() - start
    if watch is not None:
        stop.set()
        poller.join()
    return wall, peak, (seen[0] if seen else None)


def x264(w: int, h: int, kbps: int, fps: float) -> list[str]:
    gop = round(KEY * fps)
    return [
        "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high",
        "-b:v", f"{kbps}k", "-maxrate", f"{int(kbps * 1.5)}k", "-bufsize", f"{int(kbps * 1.5)}k",
        "-g", str(gop + 1), "-keyint_min", str(gop), "-sc_threshold", "0",
        "-force_key_frames", f"expr:gte(t,n_forced*{KEY})",
        "-movflags", "+frag_keyframe+empty_moov+default_base_moof", "-an", "-f", "mp4",
    ]  # fmt: skip


def audio_args(out: Path) -> list[str]:
    return ["-map", "0:a:0", "-vn", "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-ar", "48000",
            "-f", "mp4", "-movflags", "+frag_keyframe+empty_moov", str(out)]  # fmt: skip


def single_command(src: Path, out: Path, fps: float) -> list[str]:
    n = len(RUNGS)
    graph = [f"[0:v]split={n}" + "".join(f"[s{i}]" for i in range(n))]
    graph += [f"[s{i}]scale={w}:{h}:flags=lanczos[v{i}]" for i, (w, h, _) in enumerate(RUNGS)]
    cmd = [
        ffmpeg.ffmpeg_exe(),
        "-y",
        "-v",
        "error",
        "-i",
        str(src),
        "-filter_complex",
        ";".join(graph),
    ]
    for i, (w, h, kbps) in enumerate(RUNGS):
        cmd += ["-map", f"[v{i}]", *x264(w, h, kbps, fps), str(out / f"b{i}.mp4")]
    return cmd + audio_args(out / "b-audio.mp4")


def per_rung_commands(src: Path, out: Path, fps: float) -> list[list[str]]:
    cmds = []
    for i, (w, h, kbps) in enumerate(RUNGS):
        cmd = [ffmpeg.ffmpeg_exe(), "-y", "-v", "error", "-i", str(src),
               "-vf", f"scale={w}:{h}:flags=lanczos", *x264(w, h, kbps, fps),
               str(out / f"c{i}.mp4")]  # fmt: skip
        if i == 0:
            cmd += audio_args(out / "c-audio.mp4")
        cmds.append(cmd)
    return cmds


def reelforge_cmd(src: Path, out: Path, ladder: Path, full: bool) -> list[str]:
    cmd = [sys.executable, "-m", "reelforge.cli", "publish", str(src), "-o", str(out),
           "--ladder", str(ladder), "--preset", "fast", "--force", "--json"]  # fmt: skip
    if not full:
        cmd += ["--no-quality", "--no-thumbnails", "--no-fallback"]
    return cmd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default=str(MEDIA / "video" / "bbb_720p_2s_h264.mp4"))
    parser.add_argument("--seconds", type=float, default=20.0, help="loop the clip to this length")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--repeat-full", type=int, default=1, help="runs of (d)")
    args = parser.parse_args()
    clip = Path(args.clip)
    if not clip.is_file():
        raise SystemExit(f"{clip}: benchmark clip not found (set REELFORGE_TEST_MEDIA)")
    from reelforge.media.probe import probe

    work = Path(tempfile.mkdtemp(prefix="rf-bench-"))
    try:
        src = work / "source.mp4"
        loops = max(0, round(args.seconds / probe(clip).duration) - 1)
        subprocess.run([ffmpeg.ffmpeg_exe(), "-v", "error", "-stream_loop", str(loops), "-i",
                        str(clip), "-c", "copy", str(src)], check=True)  # fmt: skip
        info = probe(src)
        fps = info.video[0].frame_rate
        ladder = work / "ladder.json"
        ladder.write_text(
            json.dumps([{"width": w, "height": h, "bitrate_kbps": b} for w, h, b in RUNGS])
        )
        (work / "b").mkdir()
        (work / "c").mkdir()
        plans = {
            "a": lambda: [reelforge_cmd(src, work / "a", ladder, full=False)],
            "b": lambda: [single_command(src, work / "b", fps)],
            "c": lambda: per_rung_commands(src, work / "c", fps),
        }
        watched = {"a": work / "a" / "master.m3u8", "d": work / "d" / "master.m3u8"}
        results: dict[str, list[tuple[float, int, float | None]]] = {k: [] for k in
                                                                     [*plans, "d"]}  # fmt: skip
        rounds: list[dict[str, tuple[float, int, float | None]]] = []
        for i in range(max(args.repeat, args.repeat_full)):
            now: dict[str, tuple[float, int, float | None]] = {}
            if i < args.repeat:
                now["b"] = measure(plans["b"]())
            if i < args.repeat_full:  # right after its baseline: the machine is shared
                now["d"] = measure([reelforge_cmd(src, work / "d", ladder, full=True)],
                                   watched["d"])  # fmt: skip
            if i < args.repeat:
                for key in ("a", "c"):
                    now[key] = measure(plans[key](), watched.get(key))
            for key, run in now.items():
                results[key].append(run)
            rounds.append(now)
    finally:
        report = (
            json.loads((work / "d" / "report.json").read_text()) if (work / "d").exists() else None
        )
        shutil.rmtree(work, ignore_errors=True)

    print(f"clip: {clip.name} looped to {info.duration:.1f} s, {info.video[0].width}x"
          f"{info.video[0].height} @ {fps:g} fps; {len(RUNGS)} rungs, x264 veryfast; "
          f"median of {args.repeat} (d: {args.repeat_full})")  # fmt: skip
    labels = {
        "a": "reelforge publish, ladder only",
        "b": "one ffmpeg command, one decode",
        "c": "one ffmpeg per rung",
        "d": "reelforge publish, everything on",
    }
    med, ready = {}, {}
    for key, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        mem = max(r[1] for r in runs)
        med[key] = wall
        playable = [r[2] for r in runs if r[2] is not None]
        ready_text = ""
        if playable:
            ready[key] = statistics.median(playable)
            ready_text = f"  playable {ready[key]:6.2f} s"
        print(f"  ({key}) {labels[key]:<34} {wall:7.2f} s  peak {mem / 2**20:7.0f} MiB"
              f"{ready_text}  runs: {', '.join(f'{r[0]:.2f}' for r in runs)}")  # fmt: skip
    ab, ac, db = med["a"] / med["b"], med["a"] / med["c"], med["d"] / med["b"]
    print(f"a/b = {ab:.3f} (target <= 1.10)  {'OK' if ab <= 1.10 else 'MISSED'}")
    print(f"a/c = {ac:.3f} (target <= 0.85)  {'OK' if ac <= 0.85 else 'MISSED'}")
    if "d" in ready:
        pb = ready["d"] / med["b"]
        print(f"d playable/b = {pb:.3f} (target <= 1.15)  {'OK' if pb <= 1.15 else 'MISSED'}")
    if "a" in ready:
        print(f"a playable/b = {ready['a'] / med['b']:.3f}")
    print(f"d complete/b = {db:.3f}")
    paired = [r for r in rounds if "b" in r and "d" in r and r["d"][2] is not None]
    if paired:  # each round's ratio to its own baseline, then the median
        pp = statistics.median(r["d"][2] / r["b"][0] for r in paired)
        pc = statistics.median(r["d"][0] / r["b"][0] for r in paired)
        pa = statistics.median(r["a"][0] / r["b"][0] for r in rounds if "a" in r and "b" in r)
        print(
            f"paired by round ({len(paired)}): d playable/b = {pp:.3f} "
            f"{'OK' if pp <= 1.15 else 'MISSED'}, d complete/b = {pc:.3f}, a/b = {pa:.3f}"
        )
    if report:
        t = report["totals"]
        print(
            f"(d) split: encode {t['encode_seconds']:.2f} s, VMAF {t['quality_seconds']:.2f} s "
            f"({t['quality_seconds'] / max(t['encode_seconds'], 1e-9):.2f}x the encode; target "
            f"<= 0.3), "
            f"playable {t.get('playable_seconds')} s, complete {t.get('complete_seconds')} s "
            f"(from publish's start; the rest is the interpreter's start and imports)"
        )
        stages = t.get("stage_seconds") or {}
        if stages:
            print("    stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in stages.items()))
        for r in report["renditions"]:
            vm = f"VMAF {r['vmaf']['mean']:.2f}" if r.get("vmaf") else ""
            print(f"    {r['name']:<22} avg {r['average_kbps']:7.1f} kb/s  peak/avg "
                  f"{r['peak_to_average']:.2f}  {vm}")  # fmt: skip


if __name__ == "__main__":
    main()
