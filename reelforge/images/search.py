"""Per-image quality search: the fewest bytes that still reach a perceptual target.

Contract: :func:`search_quality` encodes a picture in one format at the lowest encoder
quality (1-100) whose decoded result scores at least ``target`` in SSIMULACRA2 against the
picture itself (or, to save encodes, a passing quality whose score is within
``CLOSE_ENOUGH`` of the target), and returns it with its quality, score and the number of
encodes tried. Every returned score was measured on the returned bytes. If even quality
100 falls short, the best attempt comes back with ``met`` false. Lossless formats are
encoded once and score 100.

Qualities that give the same encode are tried once: AVIF's 0-100 maps onto libavif's 64
quantizer levels, so its search walks those levels. The search brackets the target from a
starting quality (the previous width's answer, or
the format's typical one), stepping by a prior slope of 0.6 score points per quality step,
then interpolates inside the bracket (regula falsi) until the passing and failing
qualities are adjacent. Formats with a fast variant (AVIF at speed 9, WebP at method 4:
the same quality scale at a fifth of the time, measured on the shared photos) are searched
with it first; the final encoder then starts from that answer and usually needs one or two
encodes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PIL import Image

from reelforge.images.encoders import ImageFormat, decode
from reelforge.images.ssimulacra2 import Ssimulacra2Reference

SLOPE = 0.6  # score points per quality step near SSIMULACRA2 70, measured on the photos
CLOSE_ENOUGH = 0.5  # a pass this close to the target is taken without testing one lower
MAX_PROBES = 8


@dataclass
class Encoded:
    data: bytes
    quality: int
    score: float
    probes: int
    met: bool


def _bracket(encode: Callable[[int], bytes], reference: Ssimulacra2Reference, target: float,
             start: int, levels: Sequence[int]) -> Encoded:  # fmt: skip
    """Search ``levels`` (increasing qualities that give distinct encodes) by index."""
    tried: dict[int, tuple[float, bytes]] = {}
    slope = SLOPE * (levels[-1] - levels[0]) / max(1, len(levels) - 1)  # per level step
    lo, hi = -1, len(levels)  # highest failing and lowest passing index seen (sentinels)
    i = min(range(len(levels)), key=lambda k: abs(levels[k] - start))
    while len(tried) < MAX_PROBES:
        data = encode(levels[i])
        score = reference.score(decode(data))
        tried[i] = (score, data)
        if score >= target:
            hi = i
            if score - target < CLOSE_ENOUGH:
                break
        else:
            lo = i
        if hi - lo <= 1:
            break
        if lo in tried and hi in tried:
            s_lo, s_hi = tried[lo][0], tried[hi][0]
            frac = (target - s_lo) / (s_hi - s_lo) if s_hi > s_lo else 0.5
            i = lo + math.ceil(frac * (hi - lo))
        elif score < target:
            i = i + max(1, math.ceil((target - score) / slope))
        else:
            i = i - max(1, math.floor((score - target) / slope))
        i = min(hi - 1, max(lo + 1, i))
    if hi in tried:
        score, data = tried[hi]
        return Encoded(data, levels[hi], score, len(tried), True)
    best = max(tried, key=lambda k: tried[k][0])
    return Encoded(tried[best][1], levels[best], tried[best][0], len(tried), False)


def search_quality(img: Image.Image, fmt: ImageFormat, reference: Ssimulacra2Reference,
                   target: float, start: int | None = None) -> Encoded:  # fmt: skip
    """See the module docstring."""
    if fmt.lossless:
        data = fmt.encode(img)
        return Encoded(data, 100, 100.0, 1, True)
    start = start or fmt.start_quality
    probes = 0
    if fmt.has_fast:
        rough = _bracket(lambda q: fmt.encode(img, q, fast=True), reference, target, start,
                         fmt.levels)  # fmt: skip
        # The final encoder is the better one: at the same quality it scores higher, so
        # its answer is usually the fast one's or the level below.
        below = [q for q in fmt.levels if q < rough.quality]
        start, probes = (below[-1] if below else rough.quality), rough.probes
    final = _bracket(lambda q: fmt.encode(img, q), reference, target, start, fmt.levels)
    final.probes += probes
    return final
