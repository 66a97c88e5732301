"""SSIMULACRA2 checked against scores from the reference implementation (libjxl's tool).

The synthetic pairs and their scores are those the reference binary gave (published with
the imazen/ssimulacra2 port); the pictures are rebuilt here bit for bit (their SHA-256 is
checked). JPEG quality 80 on two shared photos scored 74.8 and 80.7 with the reference.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from conftest import media
from PIL import Image

from reelforge.images.ssimulacra2 import Ssimulacra2Reference, ssimulacra2


def _uniform(n: int, v: int) -> np.ndarray:
    return np.full((n, n, 3), v, np.uint8)


def _gradient(n: int) -> np.ndarray:
    row = np.array([x * 255 // (n - 1) for x in range(n)], np.uint8)
    return np.repeat(np.repeat(row[None, :, None], 3, axis=2), n, axis=0)


def _noise(n: int, seed: int) -> np.ndarray:
    """The reference data's 64-bit LCG, one byte per draw, RGB interleaved."""
    state, mask, out = seed, (1 << 64) - 1, bytearray()
    for _ in range(n * n * 3):
        state = (state * 6364136223846793005 + 1442695040888963407) & mask
        out.append((state >> 33) & 0xFF)
    return np.frombuffer(bytes(out), np.uint8).reshape(n, n, 3)


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(a.tobytes()).hexdigest()


def test_structured_pairs_match_the_reference():
    grad, noise, flat = _gradient(64), _noise(64, 42), _uniform(64, 128)
    assert _sha(grad).startswith("bfcfaa0618d28284")
    assert _sha(noise).startswith("7f6be7f433ccb0a0")
    assert _sha(flat).startswith("2203a98fd84adfbd")
    assert ssimulacra2(grad, flat) == pytest.approx(-64.56872148, abs=0.01)
    assert ssimulacra2(noise, flat) == pytest.approx(-47.33572558, abs=0.01)
    assert ssimulacra2(noise, noise) == 100.0


@pytest.mark.parametrize(
    ("size", "shift", "expected"),
    [(64, 10, 80.24289393), (64, 20, 56.05855584), (64, 50, -8.75942256),
     (128, 10, 77.84296299), (128, 20, 54.27883917), (128, 50, -9.82383315),
     (256, 10, 80.29149136), (256, 20, 59.77892918), (256, 50, -0.39085784)],
)  # fmt: skip
def test_flat_colour_shifts_match_the_reference(size, shift, expected):
    # Flat pictures are scored from the picture's borders only; below about 90 the score
    # is far enough from the reference's float32 rounding to match within half a point.
    assert ssimulacra2(_uniform(size, 128), _uniform(size, 128 + shift)) == pytest.approx(
        expected, abs=0.5
    )


@pytest.mark.parametrize(("photo", "expected"),
                         [("skimage_coffee.png", 74.8), ("skimage_chelsea.png", 80.7)])  # fmt: skip
def test_jpeg_quality_80_on_photos_scores_as_the_reference(photo, expected):
    img = Image.open(media(f"photos/{photo}")).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    jpeg = Image.open(buf).convert("RGB")
    assert ssimulacra2(img, jpeg) == pytest.approx(expected, abs=0.1)


def test_scores_fall_with_quality_and_reference_is_reusable():
    img = Image.open(media("photos/kodim03.png")).convert("RGB")
    ref = Ssimulacra2Reference(img)
    scores = []
    for q in (95, 80, 50, 20):
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=q)
        scores.append(ref.score(Image.open(buf).convert("RGB")))
    assert scores == sorted(scores, reverse=True) and scores[0] > 85 and scores[-1] < 55
    assert ref.score(img) == 100.0
    with pytest.raises(ValueError, match="sizes differ"):
        ref.score(img.resize((100, 100)))


def test_alpha_is_blended_over_grey():
    rgb = _noise(64, 123)
    transparent = np.dstack([rgb, np.zeros((64, 64), np.uint8)])
    grey = np.dstack([_uniform(64, 0)[..., :3] + 0, np.zeros((64, 64), np.uint8)])
    # Fully transparent pictures are the same grey whatever their colour channels hold.
    assert ssimulacra2(transparent, grey) == 100.0
    opaque = np.dstack([rgb, np.full((64, 64), 255, np.uint8)])
    assert ssimulacra2(opaque, rgb) == 100.0
