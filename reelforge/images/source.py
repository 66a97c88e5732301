"""Reading a source image safely, upright and in sRGB.

Contract: :func:`load` refuses, with a one-line :class:`~reelforge.errors.InputError`
naming the file, anything that is not a regular file, a file over ``max_bytes``, a file
Pillow cannot identify, and a picture over ``max_pixels`` (read from the header, before any
pixel is decoded: a 20000x20000 PNG costs nothing to refuse). What it returns is upright
(the EXIF orientation applied), converted to sRGB from any embedded ICC profile (Little
CMS, perceptual intent), 8 bits per channel, RGB or RGBA (alpha kept only when some pixel
is not opaque), with no metadata; ``copyright`` keeps the EXIF Artist/Copyright fields for
callers that ask to keep them. Animated images report their frame count; the first frame
is the still.

Callers with needs of their own (``talk``'s portraits) may also refuse, from the header, a
picture with a side under ``min_side``, and ask for one no larger than ``max_side`` on its
longer side: a JPEG is then decoded at a reduced scale by libjpeg itself (``draft``), and
any picture is reduced by whole factors before the final Lanczos resize, so a large picture
never costs a full-size colour conversion. ``source_size`` keeps the file's own upright size.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from reelforge.errors import InputError
from reelforge.media.probe import check_readable_file

MAX_PIXELS = 100_000_000  # 100 MP: larger is almost surely an attack or a mistake
MAX_BYTES = 200 * 1024 * 1024
EXIF_ARTIST, EXIF_COPYRIGHT = 0x013B, 0x8298


@dataclass
class SourceImage:
    path: Path
    image: Image.Image  # RGB or RGBA, sRGB, upright
    format: str  # what the file was: JPEG, PNG, WEBP, GIF, ...
    has_alpha: bool
    frames: int  # > 1 for animations
    copyright: dict[str, str]
    source_size: tuple[int, int] | None = None  # the file's upright size (before max_side)

    def __post_init__(self) -> None:
        if self.source_size is None:
            self.source_size = self.image.size

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def _to_srgb(img: Image.Image, path: Path, has_alpha: bool) -> Image.Image:
    """sRGB pixels (RGB or RGBA) from the image's own mode and embedded profile."""
    mode = "RGBA" if has_alpha else "RGB"
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in ("RGB", "RGBA", "CMYK", "LAB", "L"):
        return img.convert(mode)
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (OSError, ImageCms.PyCMSError):
        return img.convert(mode)  # an unreadable profile: read as sRGB, like browsers do
    if img.mode == "RGBA" and not has_alpha:
        img = img.convert("RGB")
    try:
        return ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"),
                                         renderingIntent=ImageCms.Intent.PERCEPTUAL,
                                         outputMode=mode)  # fmt: skip
    except ImageCms.PyCMSError as exc:
        raise InputError(f"colour profile cannot be applied ({exc})", path=path) from None


def _open(path: Path, max_pixels: int, max_bytes: int, min_side: int = 1) -> Image.Image:
    """The file opened (header read, no pixels decoded) once it passes every limit."""
    check_readable_file(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise InputError(f"is {size / 1e6:.0f} MB, over the {max_bytes / 1e6:.0f} MB limit",
                         path=path)  # fmt: skip
    try:
        with warnings.catch_warnings():  # the pixel limit is ours to apply, just below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)  # reads the header only
    except Image.DecompressionBombError as exc:
        pixels = str(exc).split("(")[1].split(" ")[0] if "(" in str(exc) else "too many"
        raise InputError(f"{pixels} pixels is over the {max_pixels / 1e6:.0f} megapixel "
                         "limit (refused before decoding)", path=path) from None  # fmt: skip
    except (UnidentifiedImageError, OSError):
        raise InputError("not an image that can be read", path=path) from None
    w, h = img.size
    if w * h > max_pixels:
        img.close()
        raise InputError(f"{w}x{h} is over the {max_pixels / 1e6:.0f} megapixel limit "
                         "(refused before decoding)", path=path)  # fmt: skip
    if min(w, h) < min_side:
        img.close()
        raise InputError(f"{w}x{h} is too small (under {min_side} px on a side)", path=path)
    return img


def check(path: str | Path, *, max_pixels: int = MAX_PIXELS, max_bytes: int = MAX_BYTES,
          min_side: int = 1) -> None:  # fmt: skip
    """Apply :func:`load`'s refusals from the header alone (nothing is decoded)."""
    _open(Path(path), max_pixels, max_bytes, min_side).close()


def _fitted(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """``size`` scaled (aspect kept, at least 1 px) so its longer side is ``max_side``."""
    scale = max_side / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _downscale(img: Image.Image, max_side: int, has_alpha: bool) -> Image.Image:
    """``img`` (already decoded, upright) no larger than ``max_side``: reduced by whole
    factors first (cheap box filtering), then resized with Lanczos."""
    if max(img.size) <= max_side:
        return img
    if img.mode in ("1", "P", "PA"):  # palettes resize only by nearest neighbour
        img = img.convert("RGBA" if has_alpha else "L" if img.mode == "1" else "RGB")
    return img.resize(_fitted(img.size, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)


def load(path: str | Path, *, max_pixels: int = MAX_PIXELS, max_bytes: int = MAX_BYTES,
         min_side: int = 1, max_side: int | None = None) -> SourceImage:  # fmt: skip
    """See the module docstring."""
    path = Path(path)
    img = _open(path, max_pixels, max_bytes, min_side)
    with img:
        fmt = img.format or "unknown"
        frames = getattr(img, "n_frames", 1)
        stored = img.size
        try:
            if max_side is not None and max(stored) > max_side:
                # JPEG only (others ignore it): libjpeg decodes at 1/2, 1/4 or 1/8 scale,
                # never below the size asked for.
                img.draft(None, _fitted(stored, max_side))
            img.load()
            exif = img.getexif()
            upright = ImageOps.exif_transpose(img)
        except (OSError, ValueError, SyntaxError) as exc:
            raise InputError(f"image data is broken ({exc})", path=path) from None
        turned = upright.size != img.size
        source_size = (stored[1], stored[0]) if turned else stored
        kept = {
            name: str(exif[tag]).strip()
            for name, tag in (("artist", EXIF_ARTIST), ("copyright", EXIF_COPYRIGHT))
            if exif.get(tag)
        }
        has_alpha = upright.mode in ("RGBA", "LA", "PA") or (
            upright.mode == "P" and "transparency" in upright.info)  # fmt: skip
        if upright.mode.startswith("I"):  # 16/32-bit grey: to 8 bits
            upright = upright.point(lambda v: v / 256).convert("L")
        if max_side is not None:
            upright = _downscale(upright, max_side, has_alpha)
        rgb = _to_srgb(upright, path, has_alpha)
    if has_alpha and rgb.getchannel("A").getextrema()[0] == 255:
        rgb, has_alpha = rgb.convert("RGB"), False  # an alpha channel that is all opaque
    clean = Image.new(rgb.mode, rgb.size)
    clean.paste(rgb)  # a fresh image: no EXIF, ICC, XMP or comments travel on
    return SourceImage(path, clean, fmt, has_alpha, frames, kept, source_size)
