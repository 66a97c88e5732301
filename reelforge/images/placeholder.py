"""What a page shows before an image arrives: a ThumbHash and the dominant colour.

Contract: :func:`thumbhash` encodes the image (at most 100x100, as the format requires) to
a ThumbHash, base64 without padding (about 25-35 bytes; it keeps the aspect ratio and
alpha, unlike BlurHash); :func:`dominant_colour` is the most common colour of a coarse
palette (median cut over a 64x64 copy, transparent pixels ignored) as ``#rrggbb``.
"""

from __future__ import annotations

import base64

import numpy as np
import thumbhash as _thumbhash
from PIL import Image


def thumbhash(img: Image.Image) -> str:
    small = img.convert("RGBA")
    small.thumbnail((100, 100), Image.Resampling.LANCZOS)
    data = list(small.tobytes())
    code = bytes(_thumbhash.rgba_to_thumb_hash(small.width, small.height, data))
    return base64.b64encode(code).decode().rstrip("=")


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
