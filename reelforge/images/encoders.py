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

AVIF_SPEED = 7


@dataclass(frozen=True)
class ImageFormat:
    name: str
    ext: str
    mime: str
    alpha: bool
    start_quality: int  # the quality that scores about SSIMULACRA2 70 on photos
    lossless: bool
    _save: Callable[[Image.Image, io.BytesIO, int], None]
    slope: float = 0.6  # SSIMULACRA2 points per quality step near 70-80 on photos
    levels: tuple[int, ...] = tuple(range(1, 101))  # qualities that give distinct encodes

    def quality_for(self, target: float) -> int:
        """The typical quality for a SSIMULACRA2 ``target`` on photos (a search's start)."""
        return round(min(100.0, max(1.0, self.start_quality + (target - 70.0) / self.slope)))

    def encode(self, img: Image.Image, quality: int = 75) -> bytes:
        """Bytes at ``quality``."""
        buf = io.BytesIO()
        self._save(img, buf, quality)
        return buf.getvalue()


def _jpeg(img: Image.Image, buf: io.BytesIO, q: int) -> None:
    img.convert("RGB").save(buf, "JPEG", quality=q, optimize=True, progressive=True,
                            subsampling=2)  # fmt: skip


def _webp(img: Image.Image, buf: io.BytesIO, q: int) -> None:
    img.save(buf, "WEBP", quality=q, method=6, alpha_quality=100, exact=False)


_AOM_TUNE: dict[str, str] | None = {"tune": "ssimulacra2"}  # dropped where libaom lacks it


def _avif(img: Image.Image, buf: io.BytesIO, q: int) -> None:
    global _AOM_TUNE
    opts = {"quality": q, "speed": AVIF_SPEED, "subsampling": "4:4:4", "codec": "aom"}
    if _AOM_TUNE is not None:
        try:
            img.save(buf, "AVIF", **opts, advanced=_AOM_TUNE)
            return
        except (OSError, ValueError):  # a libaom before 3.13 refuses the option
            _AOM_TUNE = None
            buf.seek(0)
            buf.truncate()
    img.save(buf, "AVIF", **opts)


def _png(img: Image.Image, buf: io.BytesIO, q: int) -> None:
    img.save(buf, "PNG", optimize=True)


def _avif_levels() -> tuple[int, ...]:
    """The lowest quality for each of libavif's quantizers: (100 - q) * 63 // 100, rounded."""
    first: dict[int, int] = {}
    for q in range(1, 101):
        first.setdefault(((100 - q) * 63 + 50) // 100, q)
    return tuple(sorted(first.values()))


FORMATS: dict[str, ImageFormat] = {
    "avif": ImageFormat("avif", "avif", "image/avif", True, 60, False, _avif, 1.0, _avif_levels()),
    "webp": ImageFormat("webp", "webp", "image/webp", True, 72, False, _webp, 0.6),
    "jpeg": ImageFormat("jpeg", "jpg", "image/jpeg", False, 70, False, _jpeg, 0.5),
    "png": ImageFormat("png", "png", "image/png", True, 100, True, _png),
}
DEFAULT_FORMATS = ("avif", "webp", "jpeg")


def decode(data: bytes) -> Image.Image:
    """Bytes we wrote, decoded to RGB or RGBA."""
    img = Image.open(io.BytesIO(data))
    img.load()
    return img.convert("RGBA" if "A" in img.getbands() else "RGB")
