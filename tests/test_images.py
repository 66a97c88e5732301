"""``reelforge images`` on the shared photos and faces: sets, scores, snippets, refusals."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import assert_refused, media, run_cli
from PIL import Image
from test_image_source import _png_header_only

from reelforge.images.placeholder import thumbhash_average
from reelforge.images.resize import resize
from reelforge.images.source import load
from reelforge.images.ssimulacra2 import ssimulacra2

TARGET = 70.0
PIL_FORMATS = {"avif": "AVIF", "webp": "WEBP", "jpeg": "JPEG", "png": "PNG"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    src = tmp_path_factory.mktemp("img-src")
    shutil.copy(media("photos/kodim03.png"), src / "kodim03.png")
    shutil.copy(media("photos/skimage_chelsea.png"), src / "chelsea.png")
    shutil.copy(media("faces/hopper_128.jpg"), src / "hopper.jpg")
    upright = Image.open(media("photos/kodim05.png")).convert("RGB").resize((480, 320))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways; viewers rotate 90 degrees clockwise
    upright.rotate(90, expand=True).save(src / "sideways.jpg", quality=95, exif=exif)
    face = Image.open(media("faces/astronaut_eileen_collins.png")).convert("RGB").resize((300, 300))
    yy, xx = np.mgrid[:300, :300]
    alpha = np.where((xx - 150) ** 2 + (yy - 150) ** 2 < 140**2, 255, 0).astype(np.uint8)
    Image.fromarray(np.dstack([np.asarray(face), alpha]), "RGBA").save(src / "badge.png")
    photo = Image.open(media("photos/kodim01.png")).convert("RGB")
    frames = [photo.crop((40 * i, 0, 40 * i + 200, 150)).quantize(64) for i in range(6)]
    frames[0].save(src / "pan.gif", save_all=True, append_images=frames[1:],
                   duration=[100, 100, 100, 200, 100, 100], loop=0)  # fmt: skip
    out = tmp_path_factory.mktemp("img-out") / "site"
    result = run_cli("images", src, "-o", out, "--widths", "320,640", "--jobs", "2",
                     "--above-fold", "kodim03", "--sizes", "(max-width: 640px) 100vw, 640px",
                     "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert json.loads((out / "manifest.json").read_text())["images"] == manifest["images"]
    return src, out, {e["name"]: e for e in manifest["images"]}


def test_every_variant_decodes_at_its_width_and_meets_the_target(built):
    _, out, entries = built
    assert set(entries) == {"kodim03", "chelsea", "hopper", "sideways", "badge", "pan"}
    for name, entry in entries.items():
        source = load(Path(entry["source"])).image
        widths = sorted({v["width"] for v in entry["variants"]})
        assert max(widths) <= source.width  # never above the source
        for v in entry["variants"]:
            img = Image.open(out / v["file"])
            assert img.format == PIL_FORMATS[v["format"]], (name, v)
            assert img.size == (v["width"], v["height"]), (name, v)
            reference = resize(source, img.size)
            decoded = img.convert("RGBA" if entry["has_alpha"] else "RGB")
            score = ssimulacra2(reference, decoded)
            assert score >= TARGET - 0.01, (name, v["file"], score)
            assert abs(score - v["ssimulacra2"]) < 0.05


def test_modern_formats_are_smaller_than_jpeg(built):
    _, _, entries = built
    totals = {f: 0 for f in ("avif", "webp", "jpeg")}
    for entry in entries.values():
        if entry["has_alpha"]:
            continue
        for v in entry["variants"]:
            totals[v["format"]] += v["bytes"]
    assert totals["avif"] < totals["webp"] < totals["jpeg"], totals


def test_orientation_is_applied(built):
    _, out, entries = built
    entry = entries["sideways"]
    assert (entry["width"], entry["height"]) == (480, 320)
    jpeg = max((v for v in entry["variants"] if v["format"] == "jpeg"), key=lambda v: v["width"])
    got = Image.open(out / jpeg["file"]).convert("RGB")
    upright = Image.open(media("photos/kodim05.png")).convert("RGB").resize(got.size)
    diff = np.abs(np.asarray(got, np.int16) - np.asarray(upright, np.int16)).mean()
    assert diff < 12, diff  # the same picture the right way up (a rotated one differs by ~60)


def test_alpha_survives_and_never_goes_to_jpeg(built):
    _, out, entries = built
    entry = entries["badge"]
    assert entry["has_alpha"]
    assert {v["format"] for v in entry["variants"]} == {"avif", "webp", "png"}
    assert entry["fallback"]["format"] == "png"
    for v in entry["variants"]:
        img = Image.open(out / v["file"])
        assert "A" in img.getbands(), v
        a = np.asarray(img.convert("RGBA"))[..., 3]
        h, w = a.shape
        assert a[h // 2, w // 2] == 255 and a[2, 2] == 0  # the disc opaque, corners clear


def _attrs(html: str) -> list[tuple[str, dict]]:
    tags: list[tuple[str, dict]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            tags.append((tag, dict(attrs)))

    Collect().feed(html)
    return tags


def test_snippets_parse_and_every_url_exists(built):
    _, out, entries = built
    for name, entry in entries.items():
        html = (out / name / "picture.html").read_text()
        assert html.strip() == entry["html"]
        tags = _attrs(html)
        urls = []
        for _, attrs in tags:
            if "srcset" in attrs:
                for item in attrs["srcset"].split(","):
                    url, w = item.split()
                    assert w.endswith("w")
                    urls.append(url)
            urls += [attrs[k] for k in ("src", "poster") if k in attrs]
        assert urls and all((out / u).is_file() for u in urls), (name, urls)
        img = next(a for t, a in tags if t == "img")
        assert {"width", "height", "alt", "decoding"} <= set(img)
        if name == "kodim03":
            assert "loading" not in img and img["fetchpriority"] == "high"
        else:
            assert img["loading"] == "lazy"
        if name != "pan":
            sources = [a for t, a in tags if t == "source"]
            assert [s["type"] for s in sources] == ["image/avif", "image/webp"]
            expected = "(max-width: 640px) 100vw, 640px"
            assert all(s["sizes"] == expected for s in sources)


def test_placeholders(built):
    _, _, entries = built
    for entry in entries.values():
        r, g, b, a = thumbhash_average(entry["placeholder"]["thumbhash"])
        assert min(r, g, b, a) >= 0 and max(r, g, b, a) <= 255
        assert a < 255 if entry["has_alpha"] else a == 255
        assert len(entry["placeholder"]["colour"]) == 7


def test_animation_becomes_animated_webp_and_mp4_loop(built):
    _, out, entries = built
    anim = entries["pan"]["animation"]
    assert anim["frames"] == 6 and anim["duration_ms"] == 700
    webp = Image.open(out / anim["webp"])
    assert webp.format == "WEBP" and webp.n_frames == 6
    with av.open(str(out / anim["mp4"])) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        assert stream.codec_context.name == "h264" and not container.streams.audio
        assert frames == 35  # 0.7 s at 50 fps
    data = (out / anim["mp4"]).read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # fast start
    tags = _attrs(entries["pan"]["html"])
    assert tags[0][0] == "video" and {"autoplay", "muted", "loop", "playsinline"} <= set(tags[0][1])


def test_bad_inputs_are_refused_with_nothing_written(tmp_path):
    out = tmp_path / "out"
    bomb = tmp_path / "bomb.png"
    _png_header_only(bomb, 20000, 20000)
    assert_refused(run_cli("images", bomb, "-o", out), str(bomb), "refused before decoding")
    note = tmp_path / "note.jpg"
    note.write_text("not a picture")
    assert_refused(run_cli("images", note, "-o", out), str(note), "not an image")
    assert_refused(run_cli("images", tmp_path / "missing.png", "-o", out), "does not exist")
    photo = media("faces/hopper_128.jpg")
    assert_refused(run_cli("images", photo, "-o", out, "--formats", "gif"), "--formats")
    assert_refused(run_cli("images", photo, "-o", out, "--widths", "big"), "--widths")
    assert_refused(run_cli("images", photo, "-o", out, "--target", "120"), "--target")
    assert_refused(run_cli("images", photo, "-o", out, "--jobs", "0"), "--jobs")
    assert not out.exists() and not list(tmp_path.glob(".out*"))
    out.mkdir()
    assert_refused(run_cli("images", photo, "-o", out), "already exists")
