"""What a page shows before an image arrives: a ThumbHash and the dominant colour.

Contract: :func:`thumbhash` encodes the image (at most 100x100, as the format requires) to
a ThumbHash, base64 without padding (about 25-35 bytes; it keeps the aspect ratio and
alpha, unlike BlurHash); :func:`dominant_colour` is the most common colour of a coarse
palette (median cut over a 64x64 copy, transparent pixels ignored) as ``#rrggbb``.

The encoder follows the format's reference (evanw/thumbhash) in numpy: the ``thumbhash``
package's pure-Python encoder is slow and breaks on pictures with alpha (an operator
precedence slip turns the alpha DC term into a tuple). Its decoder is used to read hashes
back (:func:`thumbhash_average`, and the tests).
"""

from __future__ import annotations

import base64
import math

import numpy as np
import thumbhash as _thumbhash
from PIL import Image


def _round(x: float) -> int:
    return math.floor(x + 0.5)  # JavaScript's Math.round, as the reference encoder uses


def _channel(values: np.ndarray, nx: int, ny: int) -> tuple[float, list[float], float]:
    """DC, normalised AC terms (triangle of cx * ny < nx * (ny - cy)) and their scale."""
    h, w = values.shape
    dc, ac, scale = 0.0, [], 0.0
    for cy in range(ny):
        fy = np.cos(math.pi / h * cy * (np.arange(h) + 0.5))
        cx = 0
        while cx * ny < nx * (ny - cy):
            fx = np.cos(math.pi / w * cx * (np.arange(w) + 0.5))
            f = float(fy @ values @ fx) / (w * h)
            if cx or cy:
                ac.append(f)
                scale = max(scale, abs(f))
            else:
                dc = f
            cx += 1
    if scale:
        ac = [0.5 + 0.5 / scale * f for f in ac]
    return dc, ac, scale


def thumbhash(img: Image.Image) -> str:
    small = img.convert("RGBA")
    small.thumbnail((100, 100), Image.Resampling.LANCZOS)
    w, h = small.size
    px = np.asarray(small, dtype=np.float64)
    alpha = px[..., 3] / 255.0
    total_a = alpha.sum()
    avg = (px[..., :3] * (alpha / 255.0)[..., None]).sum(axis=(0, 1))
    if total_a:
        avg /= total_a
    has_alpha = total_a < w * h
    limit = 5 if has_alpha else 7
    lx, ly = max(1, _round(limit * w / max(w, h))), max(1, _round(limit * h / max(w, h)))
    rgb = avg * (1 - alpha)[..., None] + (alpha / 255.0)[..., None] * px[..., :3]
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    l_dc, l_ac, l_scale = _channel((r + g + b) / 3, max(3, lx), max(3, ly))
    p_dc, p_ac, p_scale = _channel((r + g) / 2 - b, 3, 3)
    q_dc, q_ac, q_scale = _channel(r - g, 3, 3)
    landscape = w > h
    header24 = (_round(63 * l_dc) | _round(31.5 + 31.5 * p_dc) << 6
                | _round(31.5 + 31.5 * q_dc) << 12 | _round(31 * l_scale) << 18
                | int(has_alpha) << 23)  # fmt: skip
    header16 = ((ly if landscape else lx) | _round(63 * p_scale) << 3
                | _round(63 * q_scale) << 9 | int(landscape) << 15)  # fmt: skip
    code = [header24 & 255, (header24 >> 8) & 255, header24 >> 16, header16 & 255,
            header16 >> 8]  # fmt: skip
    terms = [l_ac, p_ac, q_ac]
    if has_alpha:
        a_dc, a_ac, a_scale = _channel(alpha, 5, 5)
        code.append(_round(15 * a_dc) | _round(15 * a_scale) << 4)
        terms.append(a_ac)
    start = len(code)
    for i, f in enumerate(x for t in terms for x in t):
        if start + (i >> 1) >= len(code):
            code.append(0)
        code[start + (i >> 1)] |= _round(15 * f) << ((i & 1) << 2)
    return base64.b64encode(bytes(code)).decode().rstrip("=")


def thumbhash_average(code: str) -> tuple[int, int, int, int]:
    """The average RGBA colour a ThumbHash stores (what a page can paint first)."""
    raw = base64.b64decode(code + "=" * (-len(code) % 4))
    r, g, b, a = _thumbhash.thumb_hash_to_average_rgba(list(raw))
    return round(r * 255), round(g * 255), round(b * 255), round(a * 255)


def dominant_colour(img: Image.Image) -> str:
    small = img.convert("RGBA")
    small.thumbnail((64, 64), Image.Resampling.BILINEAR)
    rgba = np.asarray(small).reshape(-1, 4)
    pixels = rgba[rgba[:, 3] >= 128, :3]
    if not len(pixels):
        return "#000000"
    opaque = Image.fromarray(np.ascontiguousarray(pixels.reshape(1, -1, 3)), "RGB")
    palette = opaque.quantize(colors=8, method=Image.Quantize.MEDIANCUT)
    counts = sorted(palette.getcolors(), reverse=True)
    index = counts[0][1]
    r, g, b = palette.getpalette()[3 * index : 3 * index + 3]
    return f"#{r:02x}{g:02x}{b:02x}"
