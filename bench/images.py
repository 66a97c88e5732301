"""Benchmark: responsive image sets against the sources and a fixed-quality JPEG baseline.

On the photos in ``../shared/media/photos``, in one run:

1. ``reelforge images`` (the library call it makes) at the default target (SSIMULACRA2 70),
   default widths (never above the source), ``--jobs 2``: total bytes per format against
   the sources, AVIF and WebP against our JPEG at the same target, and seconds per image;
2. the baseline: Pillow resize (Lanczos in sRGB) and JPEG quality 80 at the same widths,
   scored against its own resize; then, for every baseline variant, our encoders searched
   to that variant's own score: bytes at equal perceptual score;
3. speed: images per second of (1) against plain Pillow resize-and-save (JPEG q80, WebP
   q80 and AVIF q75 with Pillow's defaults, same widths).

Targets (from the issue): at equal score AVIF >= 40% and WebP >= 20% smaller than JPEG;
at most 1 s of encoding per 768x512 image for the whole set on 2 cores.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from reelforge.images.encoders import FORMATS, decode  # noqa: E402
from reelforge.images.resize import height_for, resize  # noqa: E402
from reelforge.images.responsive import WIDTHS, ImageOptions, build_sets, plan_widths  # noqa: E402
from reelforge.images.search import search_quality  # noqa: E402
from reelforge.images.ssimulacra2 import Ssimulacra2Reference  # noqa: E402

MEDIA = Path(os.environ.get("REELFORGE_TEST_MEDIA", ROOT.parent / "shared" / "media"))
OURS = ("avif", "webp", "jpeg")


def pillow_baseline(img: Image.Image, width: int) -> tuple[Image.Image, bytes]:
    small = img.resize((width, height_for(img.size, width)), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=80)
    return small, buf.getvalue()


def plain_pillow(paths: list[Path]) -> float:
    """Seconds for plain Pillow resize-and-save of every width in three formats."""
    start = time.perf_counter()
    for p in paths:
        img = Image.open(p).convert("RGB")
        for w in plan_widths(img.width, WIDTHS):
            small = img.resize((w, height_for(img.size, w)), Image.Resampling.LANCZOS)
            for fmt, q in (("JPEG", 80), ("WEBP", 80), ("AVIF", 75)):
                small.save(io.BytesIO(), fmt, quality=q)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=70.0)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    photos = sorted((MEDIA / "photos").glob("*.png"))
    if not photos:
        raise SystemExit(f"no photos in {MEDIA / 'photos'}")
    source_bytes = sum(p.stat().st_size for p in photos)
    pixels = sum(Image.open(p).width * Image.open(p).height for p in photos)

    # 1. our sets at the target
    with tempfile.TemporaryDirectory(prefix="rf-images-bench-") as work:
        t0 = time.perf_counter()
        manifest = build_sets(photos, Path(work) / "out", ImageOptions(target=args.target),
                              jobs=args.jobs)  # fmt: skip
        ours_s = time.perf_counter() - t0
    totals = {f: manifest["totals"][f] for f in OURS}
    variants = [v for e in manifest["images"] for v in e["variants"]]
    print(f"{len(photos)} photos, {pixels / 1e6:.2f} MP, sources {source_bytes / 1024:.0f} KiB "
          f"(PNG); widths {sorted({v['width'] for v in variants})}")  # fmt: skip
    print(f"\n1. our sets at SSIMULACRA2 >= {args.target:g} ({len(variants)} variants, "
          f"min score {min(v['ssimulacra2'] for v in variants):.2f})")  # fmt: skip
    for f in OURS:
        enc = [v["encodes"] for v in variants if v["format"] == f]
        print(f"   {f:5s} {totals[f] / 1024:8.0f} KiB  = {totals[f] / source_bytes:6.1%} of the "
              f"sources, {totals[f] / totals['jpeg']:.3f}x our JPEG   "
              f"({sum(enc) / len(enc):.1f} encodes per variant)")  # fmt: skip
    per_image = ours_s / len(photos)
    per_768 = ours_s / (pixels / (768 * 512))
    print(f"   time {ours_s:.1f} s with --jobs {args.jobs}: {per_image:.2f} s per image, "
          f"{per_768:.2f} s per 768x512 image-equivalent")  # fmt: skip

    # 2. equal score against the fixed-quality baseline
    base_total, ours_eq = 0, dict.fromkeys(OURS, 0)
    base_scores = []
    t0 = time.perf_counter()
    for p in photos:
        img = Image.open(p).convert("RGB")
        start: dict[str, int] = {}
        for w in sorted(plan_widths(img.width, WIDTHS), reverse=True):
            small, data = pillow_baseline(img, w)
            score = Ssimulacra2Reference(small).score(decode(data))
            base_scores.append(score)
            base_total += len(data)
            ours_small = resize(img, small.size)
            reference = Ssimulacra2Reference(ours_small)
            for f in OURS:
                enc = search_quality(ours_small, FORMATS[f], reference, score, start.get(f))
                start[f] = enc.quality
                ours_eq[f] += len(enc.data)
    print(f"\n2. at equal score with Pillow JPEG q80 (its scores {min(base_scores):.1f}-"
          f"{max(base_scores):.1f}; {time.perf_counter() - t0:.0f} s)")  # fmt: skip
    print(f"   baseline JPEG q80 {base_total / 1024:8.0f} KiB")
    for f in OURS:
        ratio = ours_eq[f] / base_total
        print(f"   our {f:5s}        {ours_eq[f] / 1024:8.0f} KiB  = {ratio:.3f}x the baseline, "
              f"{ours_eq[f] / ours_eq['jpeg']:.3f}x our JPEG")  # fmt: skip

    # 3. speed
    plain_s = plain_pillow(photos)
    print(f"\n3. speed: ours {len(photos) / ours_s:.2f} images/s (--jobs {args.jobs}), "
          f"plain Pillow resize-and-save {len(photos) / plain_s:.2f} images/s (one process): "
          f"ratio {plain_s / ours_s:.3f}")  # fmt: skip

    print("\ntargets")
    for f, goal in (("avif", 0.60), ("webp", 0.80)):
        ratio = ours_eq[f] / base_total
        own = totals[f] / totals["jpeg"]
        verdict = "OK" if max(ratio, own) <= goal else "MISSED"
        print(f"   {f}: {1 - ratio:.1%} smaller than the q80 baseline at equal score, "
              f"{1 - own:.1%} smaller than our JPEG at {args.target:g} "
              f"(target >= {1 - goal:.0%}): {verdict}")  # fmt: skip
    print(f"   time per 768x512 image {per_768:.2f} s (target <= 1 s): "
          f"{'OK' if per_768 <= 1.0 else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
