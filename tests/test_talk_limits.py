"""Portraits and videos for ``talk`` are read within limits: what is too large, a bomb, too
small, or shows a face too small to animate is refused (exit 2, one line naming the file)
before anything is rendered; what is large but allowed is read upright, in sRGB, downscaled."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_refused, media, run_cli, run_ffmpeg
from PIL import Image, ImageCms

from reelforge.lipsync.faces import MIN_FACE_PX
from reelforge.lipsync.footage import MAX_SIDE, MIN_SIDE, load_portrait

SPEECH = "speech/LJ001-0002.wav"  # 1.9 s


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` over a tiny zlib stream."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))  # fmt: skip
    return path


def _talk(face: Path, out: Path, *extra: str):
    return run_cli("talk", "--face", face, "--audio", media(SPEECH), "-o", out, "--no-motion",
                   *extra)  # fmt: skip


@pytest.fixture
def out_dir(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def test_a_portrait_over_the_pixel_limit_is_refused_from_its_header(tmp_path, out_dir):
    """12000x12000 is 144 megapixels: over the reader's limit, refused before decoding (the
    pixel data behind this header is broken, so a decode would fail differently)."""
    big = _png_header_only(tmp_path / "big.png", 12000, 12000)
    assert_refused(_talk(big, out_dir / "a.mp4"), str(big), "12000x12000",
                   "megapixel limit", "refused before decoding")  # fmt: skip
    assert list(out_dir.iterdir()) == []


def test_a_decompression_bomb_is_refused_in_one_line(tmp_path, out_dir):
    bomb = _png_header_only(tmp_path / "bomb.png", 50000, 50000)
    assert bomb.stat().st_size < 200
    assert_refused(_talk(bomb, out_dir / "a.mp4"), str(bomb), "megapixel limit")
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize("size", [(1, 1), (40, 300), (MIN_SIDE - 1, MIN_SIDE - 1)])
def test_a_portrait_too_small_is_refused(tmp_path, out_dir, size):
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", size, "gray").save(tiny)
    assert_refused(_talk(tiny, out_dir / "a.mp4"), str(tiny), f"{size[0]}x{size[1]}",
                   "too small", f"{MIN_SIDE} px")  # fmt: skip
    assert list(out_dir.iterdir()) == []


def test_a_face_too_small_to_animate_is_refused(tmp_path, out_dir):
    """A 64x64 picture of a real face is large enough to read, but its face (about 24 px) is
    too small to animate."""
    small = tmp_path / "small_face.png"
    Image.open(media("faces/hopper_128.jpg")).convert("RGB").resize((64, 64)).save(small)
    assert_refused(_talk(small, out_dir / "a.mp4"), str(small), "face", "too small to animate",
                   f"{MIN_FACE_PX} px")  # fmt: skip
    assert list(out_dir.iterdir()) == []


def _still_video(image: Image.Image, path: Path) -> Path:
    frame = path.with_suffix(".png")
    image.save(frame)
    run_ffmpeg("-loop", "1", "-framerate", "25", "-i", frame, "-t", "1", "-c:v", "libx264",
               "-pix_fmt", "yuv420p", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", path)  # fmt: skip
    return path


@pytest.mark.parametrize(
    ("case", "reason"),
    [("small face", "too small to animate"), ("no face", "no face found"),
     ("tiny video", "too small")],
)  # fmt: skip
def test_videos_with_tiny_or_no_faces_are_refused(tmp_path, out_dir, case, reason):
    hopper = Image.open(media("faces/hopper_128.jpg")).convert("RGB")
    picture = {
        "small face": hopper.resize((64, 64)),
        "no face": Image.new("RGB", (128, 128), "gray"),
        "tiny video": hopper.resize((32, 32)),
    }[case]
    video = _still_video(picture, tmp_path / "clip.mp4")
    result = run_cli("talk", "--video", video, "--audio", media(SPEECH), "-o", out_dir / "a.mp4")
    assert_refused(result, str(video), reason)
    assert list(out_dir.iterdir()) == []


def test_portraits_are_read_upright_in_srgb_and_downscaled(tmp_path):
    """The portrait reader is the images reader: EXIF orientation applied, an embedded profile
    converted to sRGB, big-but-allowed pictures downscaled to MAX_SIDE with a note."""
    face = Image.open(media("faces/kodim04.png")).convert("RGB")  # 512x768, portrait
    exif = Image.Exif()
    exif[0x0112] = 8  # stored turned: rotate 90 degrees counter-clockwise to view
    sideways = tmp_path / "sideways.jpg"
    face.rotate(-90, expand=True).save(sideways, quality=95, exif=exif)  # stored 768x512
    notes: list[str] = []
    upright = load_portrait(sideways, notes)
    assert upright.shape == (768, 512, 3) and notes == []
    assert np.abs(upright.astype(np.int16) - np.asarray(face, np.int16)).mean() < 4

    lab = ImageCms.profileToProfile(face, ImageCms.createProfile("sRGB"),
                                    ImageCms.createProfile("LAB"), outputMode="LAB")  # fmt: skip
    tagged = tmp_path / "lab.tif"
    lab.save(tagged, icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes())
    srgb = load_portrait(tagged, [])
    assert np.abs(srgb.astype(np.int16) - np.asarray(face, np.int16)).mean() < 3

    big = tmp_path / "big.jpg"  # 6000x9000: 54 megapixels, within the limits
    face.resize((6000, 9000)).save(big, quality=85)
    notes = []
    small = load_portrait(big, notes)
    assert max(small.shape[:2]) == MAX_SIDE and small.shape[0] % 2 == small.shape[1] % 2 == 0
    assert notes == [f"image downscaled from 6000x9000 to {small.shape[1]}x{small.shape[0]}"]


def test_an_oriented_portrait_talks_upright(tmp_path):
    face = Image.open(media("faces/kodim04.png")).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways = tmp_path / "sideways.jpg"
    face.rotate(90, expand=True).save(sideways, quality=95, exif=exif)
    out = tmp_path / "talk.mp4"
    result = _talk(sideways, out, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["width"], report["height"]) == (512, 768) and report["faces_found"] == 1


def test_sync_check_of_a_faceless_clip_is_undetermined_in_one_answer(tmp_path):
    """No face and a steady tone: an undetermined reading, and no numpy warning on stderr."""
    clip = tmp_path / "pattern.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=s=128x128:d=1", "-f", "lavfi", "-i",
               "sine=d=1", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-shortest", clip)  # fmt: skip
    result = run_cli("sync-check", clip, "--json")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert json.loads(result.stdout)["determined"] is False
