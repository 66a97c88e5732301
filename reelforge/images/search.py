"""Per-image quality search: the fewest bytes that still reach a perceptual target.

Contract: :func:`search_quality` encodes a picture in one format at an encoder quality
(1-100) whose decoded result scores at least ``target`` in SSIMULACRA2 against the
picture itself, as low as the search could establish, and returns it with its quality,
score, the number of encodes tried and the local slope it measured. Every returned score
was measured on the returned bytes: a variant is never taken on a prediction alone. If even
quality 100 falls short, the best attempt comes back with ``met`` false. Lossless formats
are encoded once and score 100.

Qualities that give the same encode are tried once: AVIF's 0-100 maps onto libavif's 64
quantizer levels, so its search walks those levels. The search starts from a predicted
quality (for a responsive set: the answer at the width searched before, see
:mod:`.responsive`; else the format's typical quality for the target) and steps by a slope
of score points per level (measured at that earlier width where it was, else the
format's prior). A pass ends the search when the level below is predicted to fail (its
score one slope lower would be under the target) or has failed; a failure steps up by
the missing points over the slope; once passing and failing levels bracket the target it
interpolates between them (regula falsi) until they are adjacent. With a good prediction
this is one scored encode per variant, two when the prediction was a level off.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PIL import Image

from reelforge.images.encoders import ImageFormat, decode
from reelforge.images.ssimulacra2 import Ssimulacra2Reference

MAX_PROBES = 8


@dataclass
class Encoded:
    data: bytes
    quality: int
    score: float
    probes: int
    met: bool
    slope: float | None = None  # measured score points per level near the answer


def _local_slope(tried: dict[int, tuple[float, bytes]], answer: int) -> float | None:
    """Score points per level between the answer and its nearest measured neighbour."""
    others = [k for k in tried if k != answer]
    if not others:
        return None
    k = min(others, key=lambda j: abs(j - answer))
    slope = (tried[answer][0] - tried[k][0]) / (answer - k)
    return slope if slope > 0 else None


def _bracket(encode: Callable[[int], bytes], reference: Ssimulacra2Reference, target: float,
             start: int, levels: Sequence[int], slope: float) -> Encoded:  # fmt: skip
    """Search ``levels`` (increasing qualities that give distinct encodes) by index;
    ``slope`` is the expected score gain per level."""
    tried: dict[int, tuple[float, bytes]] = {}
    lo, hi = -1, len(levels)  # highest failing and lowest passing index seen (sentinels)
    i = min(range(len(levels)), key=lambda k: abs(levels[k] - start))
    while len(tried) < MAX_PROBES:
        data = encode(levels[i])
        score = reference.score(decode(data))
        tried[i] = (score, data)
        if score >= target:
            hi = i
            if score - slope < target:  # the level below is expected to fail
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
        return Encoded(data, levels[hi], score, len(tried), True, _local_slope(tried, hi))
    best = max(tried, key=lambda k: tried[k][0])
    return Encoded(tried[best][1], levels[best], tried[best][0], len(tried), False,
                   _local_slope(tried, best))  # fmt: skip


def search_quality(img: Image.Image, fmt: ImageFormat, reference: Ssimulacra2Reference,
                   target: float, start: int | None = None,
                   slope: float | None = None) -> Encoded:  # fmt: skip
    """See the module docstring. ``start``: the predicted quality; ``slope``: score points
    per level measured near it (both from an earlier search of the same picture)."""
    if fmt.lossless:
        data = fmt.encode(img)
        return Encoded(data, 100, 100.0, 1, True)
    if start is None:
        start = fmt.quality_for(target)
    levels = fmt.levels
    prior = fmt.slope * (levels[-1] - levels[0]) / max(1, len(levels) - 1)  # per level
    # A measured slope is trusted within reason: a flat stretch would stall the search.
    per_level = min(max(slope, prior / 3), prior * 3) if slope else prior
    return _bracket(lambda q: fmt.encode(img, q), reference, target, start, levels, per_level)
