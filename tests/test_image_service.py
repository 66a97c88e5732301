"""The on-the-fly image service of ``reelforge serve``, over loopback HTTP."""

from __future__ import annotations

import io
import shutil
import subprocess

import httpx
import numpy as np
import pytest
from conftest import CLI, Server, media, raw_status
from PIL import Image
from test_image_source import _png_header_only

from reelforge.delivery.image_service import image_path
from reelforge.lipsync.faces import FaceTracker

KEY = "test-image-key-0123456789"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    (root / "photos").mkdir()
    shutil.copy(media("photos/kodim03.png"), root / "photos" / "kodim03.png")
    shutil.copy(media("faces/astronaut_eileen_collins.png"), root / "photos" / "astronaut.png")
    rgba = Image.open(media("faces/hopper_128.jpg")).convert("RGBA")
    rgba.putalpha(128)
    rgba.save(root / "photos" / "glass.png")
    _png_header_only(root / "photos" / "bomb.png", 20000, 20000)
    (root / "photos" / "notes.png").write_text("not a picture")
    outside = tmp_path_factory.mktemp("outside") / "secret.png"
    shutil.copy(media("faces/hopper_128.jpg"), outside)
    (root / "photos" / "link.png").symlink_to(outside)
    server = Server(root, env={"REELFORGE_IMAGE_KEY": KEY})
    yield server, root
    server.stop()


def _get(server, path, accept="image/avif,image/webp,*/*"):
    return httpx.get(server.base + path, headers={"Accept": accept}, timeout=60)


def test_signed_urls_resize_and_negotiate_the_format(site):
    server, _ = site
    path = image_path(400, 0, "fit", "photos/kodim03.png", KEY.encode())
    for accept, fmt, mime in [("image/avif,image/webp,*/*", "AVIF", "image/avif"),
                              ("image/webp,*/*", "WEBP", "image/webp"),
                              ("*/*", "JPEG", "image/jpeg")]:  # fmt: skip
        r = _get(server, path, accept)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == mime
        assert "Accept" in [v.strip() for v in r.headers["vary"].split(",")]
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert "etag" in r.headers
        img = Image.open(io.BytesIO(r.content))
        assert img.format == fmt and img.size == (400, 267)
    again = _get(server, path)
    assert again.content == _get(server, path).content  # served from the cache
    head = httpx.head(server.base + path, headers={"Accept": "image/avif"})
    assert head.status_code == 200 and head.headers["content-type"] == "image/avif"


def test_fill_and_never_enlarged(site):
    server, _ = site
    r = _get(server, image_path(300, 300, "fill", "photos/kodim03.png", KEY.encode()), "*/*")
    assert Image.open(io.BytesIO(r.content)).size == (300, 300)
    r = _get(server, image_path(2000, 0, "fit", "photos/kodim03.png", KEY.encode()), "*/*")
    assert Image.open(io.BytesIO(r.content)).size == (768, 512)


def test_alpha_gets_png_not_jpeg(site):
    server, _ = site
    r = _get(server, image_path(64, 0, "fit", "photos/glass.png", KEY.encode()), "*/*")
    assert r.headers["content-type"] == "image/png"
    assert np.asarray(Image.open(io.BytesIO(r.content)).convert("RGBA"))[..., 3].max() < 200


def test_smart_crop_keeps_the_face(site):
    server, _ = site
    # A wide strip from a portrait: the centre crop cuts below the face, smart keeps it.
    found = {}
    for mode in ("fill", "smart"):
        r = _get(server, image_path(512, 128, mode, "photos/astronaut.png", KEY.encode()), "*/*")
        strip = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
        assert strip.shape == (128, 512, 3)
        with FaceTracker(still=True) as tracker:
            found[mode] = tracker.faces(np.ascontiguousarray(np.tile(strip, (2, 1, 1))))
    assert found["smart"] and not found["fill"]


def test_unsafe_requests_get_their_4xx(site):
    server, _ = site
    key = KEY.encode()
    good = image_path(100, 0, "fit", "photos/kodim03.png", key)
    sig = good.split("/")[2]
    tampered = good.replace("100x0", "101x0")
    assert _get(server, tampered).status_code == 403
    assert _get(server, good.replace(sig, sig[:-2] + "AA")).status_code == 403
    assert _get(server, "/img/unsafe/100x0/fit/photos/kodim03.png").status_code == 403
    assert _get(server, "/img/nonsense/100x0/fit/photos/kodim03.png").status_code == 403
    assert _get(server, image_path(100, 0, "zoom", "photos/kodim03.png", key)).status_code == 400
    assert _get(server, image_path(9999, 0, "fit", "photos/kodim03.png", key)).status_code == 400
    assert _get(server, image_path(100, 0, "fill", "photos/kodim03.png", key)).status_code == 400
    assert _get(server, image_path(100, 0, "fit", "photos/missing.png", key)).status_code == 404
    assert _get(server, image_path(100, 0, "fit", "photos/link.png", key)).status_code == 404
    outside = _get(server, image_path(100, 0, "fit", "../outside/x.png", key))
    assert outside.status_code in (403, 404)  # the client normalises "..": then unsigned
    bomb = _get(server, image_path(100, 0, "fit", "photos/bomb.png", key))
    assert bomb.status_code == 413 and "refused before decoding" in bomb.text
    assert _get(server, image_path(100, 0, "fit", "photos/notes.png", key)).status_code == 415
    # traversal sent byte for byte (no client normalisation), plain and percent-encoded
    for raw in ("/img/unsafe/100x0/fit/photos/../../etc/passwd",
                "/img/unsafe/100x0/fit/photos/%2e%2e/%2e%2e/etc/passwd",
                f"{good.rsplit('/', 2)[0]}/..%2f..%2foutside/x.png"):  # fmt: skip
        request = f"GET {raw} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        assert raw_status(server.port, request) in (400, 403, 404), raw


def test_unsigned_mode_only_when_enabled(tmp_path):
    shutil.copy(media("faces/hopper_128.jpg"), tmp_path / "hopper.jpg")
    server = Server(tmp_path, env={"REELFORGE_IMAGE_UNSIGNED": "1", "REELFORGE_IMAGE_KEY": ""})
    try:
        r = _get(server, "/img/unsafe/64x0/fit/hopper.jpg", "*/*")
        assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (64, 64)
    finally:
        server.stop()


def test_image_url_command_signs_with_the_key_from_the_environment():
    import os

    env = {**os.environ, "REELFORGE_IMAGE_KEY": KEY}
    out = subprocess.run([*CLI, "image-url", "photos/kodim03.png", "--size", "400x0"],
                         capture_output=True, text=True, env=env, check=True)  # fmt: skip
    assert out.stdout.strip() == image_path(400, 0, "fit", "photos/kodim03.png", KEY.encode())
    assert KEY not in out.stdout + out.stderr
    env.pop("REELFORGE_IMAGE_KEY")
    bad = subprocess.run([*CLI, "image-url", "a.png", "--size", "400x0"], capture_output=True,
                         text=True, env=env, check=False)  # fmt: skip
    assert bad.returncode == 2 and "REELFORGE_IMAGE_KEY" in bad.stderr
