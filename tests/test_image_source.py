"""Reading source images: refusals before decoding, orientation, sRGB, alpha, placeholders."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from conftest import media
from PIL import Image, ImageCms

from reelforge.errors import InputError
from reelforge.images.placeholder import dominant_colour, thumbhash, thumbhash_average
from reelforge.images.source import load

PHOTO = "photos/kodim01.png"


def _png_header_only(path, width: int, height: int) -> None:
    """A PNG whose header claims width x height, with almost no pixel data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))  # fmt: skip


def test_a_bomb_is_refused_from_its_header(tmp_path):
    bomb = tmp_path / "bomb.png"
    _png_header_only(bomb, 20000, 20000)
    with pytest.raises(InputError, match="over the 100 megapixel limit") as err:
        load(bomb)
    assert str(bomb) in str(err.value) and "refused before decoding" in str(err.value)
    big = tmp_path / "big.png"  # under Pillow's own alarm, over ours
    _png_header_only(big, 12000, 10000)
    with pytest.raises(InputError, match="12000x10000 is over the 100 megapixel limit"):
        load(big)


def test_size_limit_and_non_images(tmp_path):
    with pytest.raises(InputError, match="over the 0 MB limit"):
        load(media(PHOTO), max_bytes=1000)
    text = tmp_path / "note.jpg"
    text.write_text("not a picture")
    with pytest.raises(InputError, match="not an image"):
        load(text)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(media(PHOTO).read_bytes()[:5000])
    with pytest.raises(InputError, match="broken"):
        load(truncated)


def test_exif_orientation_is_applied_and_metadata_dropped(tmp_path):
    src = Image.open(media(PHOTO)).convert("RGB")  # 768x512, landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    exif[0x8298] = "(c) Kodak"
    sideways = tmp_path / "sideways.jpg"
    src.rotate(90, expand=True).save(sideways, quality=95, exif=exif)  # stored 512x768
    loaded = load(sideways)
    assert loaded.size == (768, 512)  # upright again
    diff = np.abs(np.asarray(loaded.image, np.int16) - np.asarray(src, np.int16)).mean()
    assert diff < 4  # the same picture, the right way up (JPEG loss only)
    assert loaded.copyright == {"copyright": "(c) Kodak"}
    assert not loaded.image.getexif() and "icc_profile" not in loaded.image.info


def test_embedded_profile_is_converted_to_srgb(tmp_path):
    src = Image.open(media(PHOTO)).convert("RGB")
    # Encode the pixels as CIE Lab with a Lab profile: only a colour-managed read gets sRGB.
    lab = ImageCms.profileToProfile(src, ImageCms.createProfile("sRGB"),
                                    ImageCms.createProfile("LAB"), outputMode="LAB")  # fmt: skip
    path = tmp_path / "lab.tif"
    lab.save(path, icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes())
    loaded = load(path)
    assert loaded.image.mode == "RGB"
    diff = np.abs(np.asarray(loaded.image, np.int16) - np.asarray(src, np.int16)).mean()
    assert diff < 3, diff


def test_alpha_is_kept_only_when_used(tmp_path):
    src = Image.open(media(PHOTO)).convert("RGBA")
    alpha = Image.new("L", src.size, 255)
    alpha.paste(0, (0, 0, 200, 200))
    src.putalpha(alpha)
    path = tmp_path / "cutout.png"
    src.save(path)
    loaded = load(path)
    assert loaded.has_alpha and loaded.image.mode == "RGBA"
    assert loaded.image.getpixel((10, 10))[3] == 0
    opaque = tmp_path / "opaque.png"
    Image.open(media(PHOTO)).convert("RGBA").save(opaque)
    assert load(opaque).image.mode == "RGB"


def test_placeholders_describe_the_picture():
    image = load(media("photos/skimage_coffee.png")).image
    code = thumbhash(image)
    assert 20 <= len(code) <= 40
    mean = np.asarray(image, np.float64).reshape(-1, 3).mean(axis=0)
    assert np.abs(np.array(thumbhash_average(code)[:3]) - mean).max() < 12
    colour = dominant_colour(image)
    assert len(colour) == 7 and colour.startswith("#")
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    pixels = np.asarray(image.resize((64, 64))).reshape(-1, 3).astype(int)
    # Some real share of the picture is close to the dominant colour.
    near = (np.abs(pixels - np.array([r, g, b])).sum(axis=1) < 60).mean()
    assert near > 0.15
