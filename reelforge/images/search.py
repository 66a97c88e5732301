"""Per-image quality search: the fewest bytes that still reach a perceptual target.

Contract: :func:`search_quality` encodes a picture in one format at the lowest encoder
quality (1-100) whose decoded result scores at least ``target`` in SSIMULACRA2 against the
picture itself, and returns it with its quality, score and the number of encodes tried.
Every returned score was measured on the returned bytes. If even quality 100 falls short,
the best attempt comes back with ``met`` false. Lossless formats are encoded once and
score 100.

The search brackets the target from a starting quality (the previous width's answer, or
the format's typical one), stepping by a prior slope of 0.6 score points per quality step,
then interpolates inside the bracket (regula falsi) until the passing and failing
qualities are adjacent: usually 3-4 encodes instead of bisection's 7.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

from reelforge.images.encoders import ImageFormat, decode
from reelforge.images.ssimulacra2 import Ssimulacra2Reference

SLOPE = 0.6  # score points per quality step near SSIMULACRA2 70, measured on the photos
MAX_PROBES = 8


@dataclass
class Encoded:
    data: bytes
    quality: int
    score: float
    probes: int
    met: bool


def search_quality(img: Image.Image, fmt: ImageFormat, reference: Ssimulacra2Reference,
                   target: float, start: int | None = None) -> Encoded:  # fmt: skip
    """See the module docstring."""
    if fmt.lossless:
        data = fmt.encode(img)
        return Encoded(data, 100, 100.0, 1, True)
    tried: dict[int, tuple[float, bytes]] = {}

    def probe(q: int) -> float:
        data = fmt.encode(img, q)
        score = reference.score(decode(data))
        tried[q] = (score, data)
        return score

    lo, hi = 0, 101  # highest failing and lowest passing quality seen (sentinels)
    q = min(100, max(1, start or fmt.start_quality))
    while len(tried) < MAX_PROBES:
        score = probe(q)
        if score >= target:
            hi = q
        else:
            lo = q
        if hi - lo <= 1:
            break
        if lo in tried and hi in tried:
            s_lo, s_hi = tried[lo][0], tried[hi][0]
            frac = (target - s_lo) / (s_hi - s_lo) if s_hi > s_lo else 0.5
            q = lo + math.ceil(frac * (hi - lo))
        elif score < target:
            q = q + max(1, math.ceil((target - score) / SLOPE))
        else:
            q = q - max(1, math.floor((score - target) / SLOPE))
        q = min(hi - 1, max(lo + 1, q))
    if hi in tried:
        score, data = tried[hi]
        return Encoded(data, hi, score, len(tried), True)
    best = max(tried, key=lambda k: tried[k][0])
    return Encoded(tried[best][1], best, tried[best][0], len(tried), False)
