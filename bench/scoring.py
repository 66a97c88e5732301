"""Benchmark: VMAF scoring's cost and accuracy, subsampled against every frame, in one run.

For each shared clip, the default ladder in every codec asked for (``--codecs``, default
all four) is encoded as ``reelforge publish`` encodes it (one ffmpeg run), then scored as
publish scores it (:func:`reelforge.video.stages.score`: the subsample it chooses, libvmaf
on every CPU) and on every frame. Prints per clip the encode time, both scoring times and
the subsampled one against the encode, and the largest per-rendition difference of the
VMAF mean. Targets: subsampled scoring <= 0.3x the encode; every rendition within 0.5 of
the full score.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reelforge.media import quality  # noqa: E402
from reelforge.media.probe import probe  # noqa: E402
from reelforge.video import stages  # noqa: E402
from reelforge.video.publish import PublishOptions  # noqa: E402

MEDIA = Path(os.environ.get("REELFORGE_TEST_MEDIA", ROOT.parent / "shared" / "media")) / "video"
CLIPS = ["tears_of_steel_360p_10s.mp4", "sintel_480p_2s_h264.mp4", "bbb_720p_2s_h264.mp4",
         "obama_weekly_answers.mp4"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="*", default=CLIPS)
    parser.add_argument("--codecs", default="h264,hevc,vp9,av1")
    parser.add_argument("--preset", default="balanced")
    args = parser.parse_args()
    worst_diff, worst_ratio = 0.0, 0.0
    for clip in args.clips:
        src = MEDIA / clip
        info = probe(src)
        opts = PublishOptions(codecs=tuple(args.codecs.split(",")), preset=args.preset)
        plan = stages.plan(info, opts)
        work = Path(tempfile.mkdtemp(prefix="rf-scoring-bench-"))
        try:
            encoded = stages.encode(src, plan, work)
            t0 = time.monotonic()
            fast = stages.score(src, plan, encoded, work)
            fast_s = time.monotonic() - t0
            t0 = time.monotonic()
            full = stages.score(src, plan, encoded, work, subsample=1)
            full_s = time.monotonic() - t0
        finally:
            shutil.rmtree(work, ignore_errors=True)
        diffs = {n: abs(fast.vmaf[n]["mean"] - full.vmaf[n]["mean"]) for n in full.vmaf}
        name, diff = max(diffs.items(), key=lambda kv: kv[1])
        ratio = fast_s / encoded.seconds
        worst_diff, worst_ratio = max(worst_diff, diff), max(worst_ratio, ratio)
        step = next(iter(fast.vmaf.values()))["subsample"]
        print(f"{clip}: {len(diffs)} renditions, {info.video[0].frames} frames; encode "
              f"{encoded.seconds:.1f} s; scoring every {step} frame(s) {fast_s:.1f} s "
              f"({ratio:.2f}x encode), every frame {full_s:.1f} s ({full_s / encoded.seconds:.2f}x)"
              f"; largest VMAF difference {diff:.2f} ({name})")  # fmt: skip
    print(
        f"worst scoring/encode {worst_ratio:.2f}x (target <= 0.3: "
        f"{'OK' if worst_ratio <= 0.3 else 'MISSED'}); worst VMAF difference "
        f"{worst_diff:.2f} (target <= 0.5: {'OK' if worst_diff <= 0.5 else 'MISSED'}); "
        f"libvmaf threads {quality.default_threads()}"
    )


if __name__ == "__main__":
    main()
