"""Benchmark: responsive image sets against the sources and a fixed-quality JPEG baseline.

On the photos in ``../shared/media/photos``, in one run:

1. ``reelforge images`` (the library call it makes) at the default target (SSIMULACRA2 70),
   default widths (never above the source), ``--jobs 2``: total bytes per format against
   the sources, AVIF and WebP against our JPEG at the same target, and seconds per image;
   timed between two runs of the plain Pillow pipeline (resize with Lanczos in sRGB, save
   JPEG q80, WebP q80 and AVIF q75 once each with Pillow's defaults, same widths, same
   number of processes), so a machine busy with other work slows both alike;
2. the baseline: Pillow resize (Lanczos in sRGB) and JPEG quality 80 at the same widths,
   scored against its own resize; then, for every baseline variant, our encoders searched
   to that variant's own score: bytes at equal perceptual score.

Targets: the whole set in at most 2x the plain pipeline's time; at equal score AVIF
<= 0.60x and WebP <= 0.78x the bytes of Pillow JPEG q80.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
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


def _plain_one(path: Path) -> None:
    img = Image.open(path).convert("RGB")
    for w in plan_widths(img.width, WIDTHS):
        small = img.resize((w, height_for(img.size, w)), Image.Resampling.LANCZOS)
        for fmt, q in (("JPEG", 80), ("WEBP", 80), ("AVIF", 75)):
            small.save(io.BytesIO(), fmt, quality=q)


def plain_pillow(paths: list[Path], jobs: int) -> float:
    """Seconds for plain Pillow resize-and-save of every width in three formats, the
    images spread over ``jobs`` processes as ``build_sets`` spreads them."""
    start = time.perf_counter()
    if jobs <= 1:
        for p in paths:
            _plain_one(p)
    else:
        with multiprocessing.Pool(jobs) as pool:
            list(pool.imap_unordered(_plain_one, paths))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=70.0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--photos", type=int, default=0, help="only the first N (0: all)")
    args = parser.parse_args()
    photos = sorted((MEDIA / "photos").glob("*.png"))[: args.photos or None]
    if not photos:
        raise SystemExit(f"no photos in {MEDIA / 'photos'}")
    source_bytes = sum(p.stat().st_size for p in photos)
    pixels = sum(Image.open(p).width * Image.open(p).height for p in photos)

    # 1. our sets at the target, between two runs of the plain pipeline
    plain_before = plain_pillow(photos, args.jobs)
    with tempfile.TemporaryDirectory(prefix="rf-images-bench-") as work:
        t0 = time.perf_counter()
        manifest = build_sets(photos, Path(work) / "out", ImageOptions(target=args.target),
                              jobs=args.jobs)  # fmt: skip
        ours_s = time.perf_counter() - t0
    plain_after = plain_pillow(photos, args.jobs)
    plain_s = (plain_before + plain_after) / 2
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
    print(f"   plain Pillow pipeline, same widths and processes: {plain_before:.1f} s before, "
          f"{plain_after:.1f} s after (mean {plain_s:.1f} s); ours {ours_s / plain_s:.2f}x "
          f"its time")  # fmt: skip

    # 2. equal score against the fixed-quality baseline
    base_total, ours_eq = 0, dict.fromkeys(OURS, 0)
    base_scores = []
    t0 = time.perf_counter()
    for p in photos:
        img = Image.open(p).convert("RGB")
        start: dict[str, tuple] = {}
        for w in sorted(plan_widths(img.width, WIDTHS), reverse=True):
            small, data = pillow_baseline(img, w)
            score = Ssimulacra2Reference(small).score(decode(data))
            base_scores.append(score)
            base_total += len(data)
            ours_small = resize(img, small.size)
            reference = Ssimulacra2Reference(ours_small)
            for f in OURS:
                enc = search_quality(ours_small, FORMATS[f], reference, score, *start.get(f, ()))
                start[f] = (enc.quality, enc.slope)
                ours_eq[f] += len(enc.data)
    print(f"\n2. at equal score with Pillow JPEG q80 (its scores {min(base_scores):.1f}-"
          f"{max(base_scores):.1f}; {time.perf_counter() - t0:.0f} s)")  # fmt: skip
    print(f"   baseline JPEG q80 {base_total / 1024:8.0f} KiB")
    for f in OURS:
        ratio = ours_eq[f] / base_total
        print(f"   our {f:5s}        {ours_eq[f] / 1024:8.0f} KiB  = {ratio:.3f}x the baseline, "
              f"{ours_eq[f] / ours_eq['jpeg']:.3f}x our JPEG")  # fmt: skip

    print("\ntargets")
    ratio = ours_s / plain_s
    print(f"   time: {ratio:.2f}x the plain Pillow pipeline (target <= 2x): "
          f"{'OK' if ratio <= 2.0 else 'MISSED'}")  # fmt: skip
    for f, goal in (("avif", 0.60), ("webp", 0.78)):
        ratio = ours_eq[f] / base_total
        print(f"   {f}: {ratio:.3f}x the bytes of Pillow JPEG q80 at equal SSIMULACRA2 "
              f"(target <= {goal:.2f}x): {'OK' if ratio <= goal else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
