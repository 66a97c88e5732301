"""The origin, started for real and spoken to over loopback HTTP."""

from __future__ import annotations

import base64
import re
import subprocess

import httpx
import pytest
from conftest import ROOT, Server
from PIL import Image

from reelforge.media import ffmpeg


@pytest.fixture(scope="module", params=["granian", "uvicorn"])
def origin(request, talk):
    out, report = talk
    server = Server(out, request.param)
    yield server, out, report
    server.stop()


def test_serve_prints_the_url(talk):
    out, _ = talk
    server = Server(out, "granian")
    printed = server.stop()
    assert f"http://127.0.0.1:{server.port}/" in printed


def test_player_page_references_the_stream_and_poster(origin):
    server, out, report = origin
    r = httpx.get(server.base + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "/media/master.m3u8" in r.text and "/media/manifest.mpd" in r.text
    # the poster's small preview is inlined, byte for byte, so it shows before any request
    poster = re.search(r'poster="data:image/webp;base64,([^"]+)"', r.text)
    preview = out / report["files"]["poster_preview"]
    assert poster and base64.b64decode(poster.group(1)) == preview.read_bytes()
    with Image.open(preview) as img:
        assert img.format == "WEBP" and img.width == 320 and img.height == 180
    assert preview.stat().st_size < 8000
    if (ROOT / "node_modules" / "hls.js").is_dir():
        assert "hls.min.js" in r.text
        js = httpx.get(server.base + "/player/hls.js/dist/hls.min.js",
                       headers={"Accept-Encoding": "br"})  # fmt: skip
        assert js.status_code == 200 and js.headers["content-encoding"] == "br"
        assert len(js.content) > 100_000  # httpx decodes it
        assert "max-age=86400" in js.headers["cache-control"]
    if (ROOT / "node_modules" / "dashjs").is_dir():
        dash = httpx.get(server.base + "/?format=dash")
        assert "dash.all.min.js" in dash.text and "hls.min.js" not in dash.text


def test_player_page_is_compressed_and_revalidated(origin):
    server, _, _ = origin
    plain = httpx.get(server.base + "/", headers={"Accept-Encoding": "identity"})
    br = httpx.get(server.base + "/", headers={"Accept-Encoding": "br"})
    assert br.headers["content-encoding"] == "br" and "content-encoding" not in plain.headers
    assert br.text == plain.text  # the same page, decoded by httpx
    assert int(br.headers["content-length"]) < 0.85 * len(plain.content)
    assert "Accept-Encoding" in br.headers["vary"] and "max-age=60" in br.headers["cache-control"]
    again = httpx.get(server.base + "/", headers={"Accept-Encoding": "br",
                                                  "If-None-Match": br.headers["etag"]})  # fmt: skip
    assert again.status_code == 304 and not again.content


def test_mime_types_and_cache_headers(origin):
    server, out, report = origin
    cases = {
        "master.m3u8": "application/vnd.apple.mpegurl",
        "manifest.mpd": "application/dash+xml",
        "thumbnails.vtt": "text/vtt",
        report["files"]["poster"]["avif"]: "image/avif",
        report["files"]["poster"]["webp"]: "image/webp",
        report["files"]["fallback"]: "video/mp4",
    }
    seg = next(out.glob("video/*/seg-*.m4s")).relative_to(out).as_posix()
    cases[seg] = "video/iso.segment"
    for path, mime in cases.items():
        r = httpx.get(f"{server.base}/media/{path}")
        assert r.status_code == 200, path
        assert r.headers["content-type"].split(";")[0] == mime, path
        cache = r.headers["cache-control"]
        if path.endswith((".m3u8", ".mpd", ".vtt")):
            assert "max-age=60" in cache
        else:
            assert "immutable" in cache and "max-age=31536000" in cache
    head = httpx.head(f"{server.base}/media/{seg}")
    assert head.status_code == 200 and int(head.headers["content-length"]) > 0


def test_byte_ranges(origin):
    server, out, _ = origin
    seg = next(out.glob("video/*/seg-*.m4s"))
    url = f"{server.base}/media/{seg.relative_to(out).as_posix()}"
    r = httpx.get(url, headers={"Range": "bytes=100-199"})
    assert r.status_code == 206
    assert r.content == seg.read_bytes()[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{seg.stat().st_size}"
    r = httpx.get(url, headers={"Range": f"bytes={seg.stat().st_size + 10}-"})
    assert r.status_code == 416


def test_nothing_outside_the_root(origin):
    server, _, _ = origin
    for path in ("/media/../../../../etc/passwd", "/media/%2e%2e/%2e%2e/etc/passwd"):
        r = httpx.get(server.base + path)
        assert r.status_code == 404


def test_ffmpeg_plays_the_whole_stream_over_http(origin):
    server, _, report = origin
    result = subprocess.run(
        [ffmpeg.ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error",
         "-i", f"{server.base}/media/master.m3u8", "-map", "0:v:0", "-map", "0:a:0",
         "-f", "null", "-progress", "pipe:1", "-"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    frames = [
        int(line.split("=")[1]) for line in result.stdout.splitlines() if line.startswith("frame=")
    ]
    expected = report["source"]["duration"] * report["source"]["video"][0]["frame_rate"]
    assert abs(frames[-1] - expected) <= 2
