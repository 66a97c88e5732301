"""Resizing in linear light, and the geometry of fit, fill and crop.

Contract: :func:`resize` scales an RGB or RGBA picture to an exact size in linear light
(sRGB decoded, Lanczos-3 per channel on 32-bit float planes with Pillow, encoded back with
rounding), alpha premultiplied while filtering, so fine bright-on-dark detail keeps its
brightness and transparent pixels lend no colour to their neighbours. :func:`fit_size`,
:func:`cover_box` give the sizes and crops for ``fit`` (inside the box) and ``fill``
(cover the box, cropped around a focus point).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_V = np.arange(256) / 255.0
_TO_LINEAR = np.where(_V <= 0.04045, _V / 12.92, ((_V + 0.055) / 1.055) ** 2.4).astype(np.float32)


def _to_srgb8(lin: np.ndarray) -> np.ndarray:
    lin = np.clip(lin, 0.0, 1.0)
    enc = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * np.power(lin, 1 / 2.4) - 0.055)
    return np.rint(enc * 255.0).astype(np.uint8)


def _resize_plane(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    img = Image.fromarray(plane, "F")
    return np.asarray(img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0))


def resize(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``img`` (RGB or RGBA) at exactly ``size``, filtered in linear light."""
    if img.size == size:
        return img.copy()
    a = np.asarray(img)
    lin = _TO_LINEAR[a[..., :3]]
    if img.mode == "RGBA":
        alpha = a[..., 3].astype(np.float32) / 255.0
        planes = [_resize_plane(np.ascontiguousarray(lin[..., c] * alpha), size) for c in range(3)]
        new_alpha = np.clip(_resize_plane(alpha, size), 0.0, 1.0)
        safe = np.where(new_alpha > 1e-6, new_alpha, 1.0)
        rgb = _to_srgb8(np.stack([p / safe for p in planes], axis=-1))
        a8 = np.rint(new_alpha * 255.0).astype(np.uint8)
        return Image.fromarray(np.dstack([rgb, a8]), "RGBA")
    planes = [_resize_plane(np.ascontiguousarray(lin[..., c]), size) for c in range(3)]
    return Image.fromarray(_to_srgb8(np.stack(planes, axis=-1)), "RGB")


def height_for(size: tuple[int, int], width: int) -> int:
    """The height that keeps the aspect ratio at ``width`` (at least 1)."""
    w, h = size
    return max(1, round(h * width / w))


def fit_size(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """The largest size with the source's aspect ratio inside ``box`` (0 = unbounded),
    never larger than the source."""
    w, h = size
    bw, bh = box
    scale = min(bw / w if bw else 1.0, bh / h if bh else 1.0, 1.0)
    return max(1, round(w * scale)), max(1, round(h * scale))


def cover_box(size: tuple[int, int], box: tuple[int, int],
              focus: tuple[float, float] = (0.5, 0.5)) -> tuple[tuple[int, int, int, int],
                                                                 tuple[int, int]]:  # fmt: skip
    """For ``fill``: the crop (x0, y0, x1, y1) of the source with the box's aspect ratio,
    as close to centred on ``focus`` (fractions of width and height) as the edges allow,
    and the output size (the box, shrunk to the crop when the crop is smaller)."""
    w, h = size
    bw, bh = box
    if not bw or not bh:
        return (0, 0, w, h), fit_size(size, box)
    aspect = bw / bh
    cw, ch = (w, round(w / aspect)) if w / h < aspect else (round(h * aspect), h)
    cw, ch = max(1, min(cw, w)), max(1, min(ch, h))
    x0 = round(min(max(focus[0] * w - cw / 2, 0), w - cw))
    y0 = round(min(max(focus[1] * h - ch / 2, 0), h - ch))
    out = (bw, bh) if cw >= bw else (cw, max(1, round(cw / aspect)))
    return (x0, y0, x0 + cw, y0 + ch), out
