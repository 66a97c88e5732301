"""Benchmark: the sync meter on shifted and mismatched real clips, in one run.

For each talking-head clip, the audio is shifted by +-80 and +-200 ms; the error is how far
the reading moved from (untouched reading + shift). Mismatched pairs (one clip's picture,
another's sound) must never give a determined reading. Targets: error <= 40 ms on every
shifted clip, no determined mismatched pair. Also: frames per second of each local backend
(viseme, wav2lip) at 512x512 and on a dubbed 360x288 video against real time (25 fps;
target for viseme >= 25), and face-mesh tracking speed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reelforge.lipsync.syncmeter import extract, measure  # noqa: E402
from reelforge.media.ffmpeg import ffmpeg_exe  # noqa: E402

MEDIA = Path(os.environ.get("REELFORGE_TEST_MEDIA", ROOT.parent / "shared" / "media")) / "video"
CLIPS = ["grid_bbaf2n.mpg", "grid_brbk7n.mpg", "grid_lbax4n.mpg",
         "obama_weekly_families.mp4", "obama_weekly_answers.mp4"]  # fmt: skip
SHIFTS = (80, -80, 200, -200)


def ff(*args) -> None:
    subprocess.run([ffmpeg_exe(), "-v", "fatal", "-y", *map(str, args)], check=True)


def local_backends_fps(work: Path) -> None:
    """Render the 9.7 s LJ Speech clip on the 512x512 portrait with each local backend, and
    dub a GRID clip with it: frames per second against real time (25 fps). wav2lip runs the
    real architecture with random weights (its speed does not depend on the weights)."""
    from reelforge.lipsync.talk import TalkOptions, talk

    face = MEDIA.parent / "faces" / "astronaut_eileen_collins.png"
    audio = MEDIA.parent / "speech" / "LJ001-0001.wav"
    backends: dict[str, dict] = {"viseme": {}}
    try:
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_models import build_random_wav2lip

        backends["wav2lip"] = {"checkpoint": build_random_wav2lip(work / "w2l.pth")}
    except ImportError:
        print("wav2lip: skipped (PyTorch is not installed)")
    for name, extra in backends.items():
        for kind in ("portrait", "video"):
            opts = TalkOptions(backend=name, check_sync=False, **extra)
            out = work / f"{name}-{kind}.mp4"
            t0 = time.monotonic()
            if kind == "portrait":
                report = talk(face, audio, out, opts)
            else:
                report = talk(None, audio, out, opts, video=MEDIA / "grid_bbaf2n.mpg")
            total = time.monotonic() - t0
            fps = report.frames / total
            sync = measure(out) if name == "viseme" else None
            reading = (
                (
                    f"; its output reads {sync.offset_ms:+.0f} ms, "
                    f"{'determined' if sync.determined else 'undetermined'}"
                )
                if sync
                else ""
            )
            target = " (target >= 25 fps)" if name == "viseme" and kind == "portrait" else ""
            print(f"{name:8s} {kind:8s} {report.width}x{report.height}: frames+encode "
                  f"{report.render_fps:.0f} fps, end to end {fps:.1f} fps = {fps / 25:.2f}x "
                  f"real time{target}{reading}")  # fmt: skip


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="rf-talk-bench-"))
    print("shifted clips: reading error in ms (target |error| <= 40)")
    worst = 0.0
    for clip in CLIPS:
        src = MEDIA / clip
        base = measure(src)
        errors = []
        for ms in SHIFTS:
            out = work / f"{clip}.{ms}.mp4"
            late = ["-itsoffset", f"{abs(ms) / 1000:.3f}"]
            first, second = (late, []) if ms > 0 else ([], late)
            ff(*first, "-i", src, *second, "-i", src, "-map", "0:v", "-map", "1:a",
               "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", out)  # fmt: skip
            errors.append(measure(out).offset_ms - base.offset_ms - ms)
        worst = max(worst, *map(abs, errors))
        print(f"  {clip:28s} untouched {base.offset_ms:+6.0f} ms (conf {base.confidence:.2f}, "
              f"{'determined' if base.determined else 'undetermined'})  errors "
              + " ".join(f"{e:+5.0f}" for e in errors))  # fmt: skip
    print(f"  worst error {worst:.0f} ms: {'OK' if worst <= 40 else 'MISSED'}")
    determined = 0
    pairs = [(a, b) for a in range(len(CLIPS)) for b in range(len(CLIPS)) if a != b]
    for a, b in pairs:
        out = work / f"mm{a}{b}.mp4"
        ff("-i", MEDIA / CLIPS[a], "-i", MEDIA / CLIPS[b], "-map", "0:v", "-map", "1:a",
           "-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", out)  # fmt: skip
        determined += measure(out).determined
    print(f"mismatched pairs: {determined} determined of {len(pairs)} (target 0)")
    local_backends_fps(work)
    t0 = time.monotonic()
    feats = extract(MEDIA / "obama_weekly_answers.mp4")
    elapsed = time.monotonic() - t0
    print(f"face mesh + features: {feats.mouth.size / elapsed:.0f} frames/s on 1280x720")


if __name__ == "__main__":
    main()
