"""The still-image formats we write, and how each is encoded at a given quality.

Contract: :data:`FORMATS` maps a format name (``avif``, ``webp``, ``jpeg``, ``png``) to its
:class:`ImageFormat`: file extension, MIME type, whether it carries alpha, the quality a
search starts from, and :meth:`ImageFormat.encode` (a picture and a quality 1-100 to
bytes). Settings, chosen by measurement on the shared photos at SSIMULACRA2 70:

- JPEG: libjpeg-turbo, progressive, optimised Huffman tables, 4:2:0 (4:4:4 was no smaller
  at equal score);
- WebP: method 6 (8% smaller than method 4 at equal score, twice the time);
- AVIF: libaom through libavif (its still-image tuning), speed 6, 4:4:4 (2-4% smaller than
  4:2:0 at equal score; speed 4 saved 2% more at 5x the time);
- PNG: lossless, the fallback for pictures with alpha where a browser lacks AVIF and WebP.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image


@dataclass(frozen=True)
class ImageFormat:
    name: str
    ext: str
    mime: str
    alpha: bool
    start_quality: int  # where a search begins (about SSIMULACRA2 70 on photos)
    lossless: bool
    _save: Callable[[Image.Image, io.BytesIO, int], None]
    _save_fast: Callable[[Image.Image, io.BytesIO, int], None] | None = None

    levels: tuple[int, ...] = tuple(range(1, 101))  # qualities that give distinct encodes

    @property
    def has_fast(self) -> bool:
        return self._save_fast is not None

    def encode(self, img: Image.Image, quality: int = 75, *, fast: bool = False) -> bytes:
        """Bytes at ``quality``; ``fast`` uses the quick variant where there is one (for
        searching: same quality scale, somewhat larger files)."""
        buf = io.BytesIO()
        (self._save_fast if fast and self._save_fast else self._save)(img, buf, quality)
        return buf.getvalue()


def _jpeg(img: Image.Image, buf: io.BytesIO, q: int) -> None:
    img.convert("RGB").save(buf, "JPEG", quality=q, optimize=True, progressive=True,
                            subsampling=2)  # fmt: skip


def _webp(img: Image.Image, buf: io.BytesIO, q: int, method: int = 6) -> None:
    img.save(buf, "WEBP", quality=q, method=method, alpha_quality=100, exact=False)


def _webp_fast(img: Image.Image, buf: io.BytesIO, q: int) -> None:
    _webp(img, buf, q, method=4)


def _avif(img: Image.Image, buf: io.BytesIO, q: int, speed: int = 6) -> None:
    img.save(buf, "AVIF", quality=q, speed=speed, subsampling="4:4:4", codec="aom")


def _avif_fast(img: Image.Image, buf: io.BytesIO, q: int) -> None:
    _avif(img, buf, q, speed=9)


def _png(img: Image.Image, buf: io.BytesIO, q: int) -> None:
    img.save(buf, "PNG", optimize=True)


def _avif_levels() -> tuple[int, ...]:
    """The lowest quality for each of libavif's quantizers: (100 - q) * 63 // 100, rounded."""
    first: dict[int, int] = {}
    for q in range(1, 101):
        first.setdefault(((100 - q) * 63 + 50) // 100, q)
    return tuple(sorted(first.values()))


FORMATS: dict[str, ImageFormat] = {
    "avif": ImageFormat(
        "avif", "avif", "image/avif", True, 58, False, _avif, _avif_fast, _avif_levels()
    ),
    "webp": ImageFormat("webp", "webp", "image/webp", True, 74, False, _webp, _webp_fast),
    "jpeg": ImageFormat("jpeg", "jpg", "image/jpeg", False, 70, False, _jpeg),
    "png": ImageFormat("png", "png", "image/png", True, 100, True, _png),
}
DEFAULT_FORMATS = ("avif", "webp", "jpeg")


def decode(data: bytes) -> Image.Image:
    """Bytes we wrote, decoded to RGB or RGBA."""
    img = Image.open(io.BytesIO(data))
    img.load()
    return img.convert("RGBA" if "A" in img.getbands() else "RGB")
