"""The origin as a CDN sees it: headers per asset class, validators, ranges, compression,
signed playback, versioned streams and unsafe requests, over loopback HTTP; the same
conformance tests against ``reelforge serve`` and against nginx with the origin
configuration ``reelforge cdn nginx --serve`` writes."""

from __future__ import annotations

import base64
import gzip
import json
import shutil
import subprocess
import time

import brotli
import httpx
import pytest
from conftest import CLI, TEST_LADDER, Server, media, raw_status, run_cli
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from origins import KINDS, start_origin

from reelforge.delivery.signing import make_token
from reelforge.media import ffmpeg

KEY = "playback-key-for-tests"
IMMUTABLE = "public, max-age=31536000, immutable"


@pytest.fixture(scope="module", params=KINDS)
def site(request, tmp_path_factory, talk):
    published, _ = talk
    root = tmp_path_factory.mktemp("origin")
    shutil.copytree(published, root / "talk")
    shutil.copytree(published, root / "secret")
    (root / "secret" / ".private").write_text("")
    outside = tmp_path_factory.mktemp("outside") / "passwd"
    outside.write_text("root:x:0:0")
    (root / "talk" / "escape.m3u8").symlink_to(outside)
    env = {"REELFORGE_PLAYBACK_KEY": KEY, "REELFORGE_MANIFEST_MAX_AGE": "30"}
    server = start_origin(request.param, root, env=env)
    yield server, root
    server.stop()


def _files(root, pattern):
    return sorted(p.relative_to(root).as_posix() for p in root.glob(pattern))


def test_headers_by_asset_class(site):
    server, root = site
    cases = {
        "talk/master.m3u8": ("application/vnd.apple.mpegurl", "max-age=30"),
        "talk/manifest.mpd": ("application/dash+xml", "max-age=30"),
        _files(root, "talk/video/*/seg-*.m4s")[0]: ("video/iso.segment", IMMUTABLE),
        _files(root, "talk/video/*/init-*.mp4")[0]: ("video/mp4", IMMUTABLE),
        _files(root, "talk/poster-*.avif")[0]: ("image/avif", IMMUTABLE),
        _files(root, "talk/poster-*.webp")[0]: ("image/webp", IMMUTABLE),
        _files(root, "talk/fallback-*.mp4")[0]: ("video/mp4", IMMUTABLE),
        "talk/thumbnails.vtt": ("text/vtt", "max-age=30"),
    }
    for path, (mime, cache) in cases.items():
        r = httpx.get(f"{server.base}/media/{path}", headers={"Origin": "https://app.example"})
        assert r.status_code == 200, path
        assert r.headers["content-type"].split(";")[0] == mime, path
        assert cache in r.headers["cache-control"], (path, r.headers["cache-control"])
        assert r.headers["access-control-allow-origin"] == "*"
        assert "etag" in r.headers and "last-modified" in r.headers
    manifest = httpx.get(f"{server.base}/media/talk/master.m3u8").headers["cache-control"]
    assert "stale-while-revalidate" in manifest
    head = httpx.head(f"{server.base}/media/talk/master.m3u8")
    assert head.status_code == 200 and not head.content
    pre = httpx.options(f"{server.base}/media/talk/master.m3u8", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "range"})  # fmt: skip
    assert pre.status_code == 200 and "range" in pre.headers["access-control-allow-headers"].lower()


def test_validators_give_304(site):
    server, root = site
    seg = f"{server.base}/media/{_files(root, 'talk/video/*/seg-*.m4s')[0]}"
    first = httpx.get(seg)
    again = httpx.get(seg, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and not again.content
    since = httpx.get(seg, headers={"If-Modified-Since": first.headers["last-modified"]})
    assert since.status_code == 304
    master = f"{server.base}/media/talk/master.m3u8"
    br = httpx.get(master, headers={"Accept-Encoding": "br"})
    etag = br.headers["etag"]
    again = httpx.get(master, headers={"Accept-Encoding": "br", "If-None-Match": etag})
    assert again.status_code == 304


def test_playlists_are_compressed(site):
    server, root = site
    plain = (root / "talk" / "manifest.mpd").read_bytes()
    for enc, decode in (("br", brotli.decompress), ("gzip", gzip.decompress)):
        r = httpx.get(f"{server.base}/media/talk/manifest.mpd", headers={"Accept-Encoding": enc})
        assert r.headers["content-encoding"] == enc and "Accept-Encoding" in r.headers["vary"]
        assert decode(_wire(str(r.url), enc)) == plain  # the bytes on the wire
        assert r.content == plain  # httpx decoded it too
        assert len(_wire(str(r.url), enc)) < len(plain) / 3
    none = httpx.get(
        f"{server.base}/media/talk/manifest.mpd", headers={"Accept-Encoding": "identity"}
    )
    assert "content-encoding" not in none.headers and none.content == plain
    seg = httpx.get(f"{server.base}/media/{_files(root, 'talk/video/*/seg-*.m4s')[0]}",
                    headers={"Accept-Encoding": "br, gzip"})  # fmt: skip
    assert "content-encoding" not in seg.headers  # media is never recompressed


def _wire(url: str, encoding: str) -> bytes:
    with httpx.stream("GET", url, headers={"Accept-Encoding": encoding}) as r:
        return b"".join(r.iter_raw())


def test_byte_ranges(site):
    server, root = site
    rel = _files(root, "talk/fallback-*.mp4")[0]
    data = (root / rel).read_bytes()
    url = f"{server.base}/media/{rel}"
    r = httpx.get(url, headers={"Range": "bytes=100-1099"})
    assert r.status_code == 206 and r.content == data[100:1100]
    assert r.headers["content-range"] == f"bytes 100-1099/{len(data)}"
    tail = httpx.get(url, headers={"Range": "bytes=-500"})
    assert tail.status_code == 206 and tail.content == data[-500:]
    bad = httpx.get(url, headers={"Range": f"bytes={len(data) + 10}-"})
    assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{len(data)}"
    assert httpx.get(url, headers={"Range": "bytes=0-1,5-9"}).status_code == 416
    assert httpx.get(url, headers={"Range": "bytes=" + "1-2," * 500}).status_code == 416
    for ignored in ("pages=1-2", "bytes=abc", "bytes=5-2"):  # RFC 9110: served whole
        whole = httpx.get(url, headers={"Range": ignored})
        assert whole.status_code == 200 and whole.content == data, ignored


def test_one_file_has_one_etag_whoever_sends_it(site):
    """nginx sends a plain GET itself and passes an ignored range to the app: both give the
    file nginx's ETag, which If-Range and If-None-Match then match on either path; a 416
    carries each CORS header once."""
    server, root = site
    rel = _files(root, "talk/fallback-*.mp4")[0]
    st = (root / rel).stat()
    expected = f'"{int(st.st_mtime):x}-{st.st_size:x}"'
    url = f"{server.base}/media/{rel}"
    for extra in ({}, {"Range": "bytes=5-2"}):  # the fast path, then the app's
        r = httpx.get(url, headers=extra)
        assert r.status_code == 200 and r.headers["etag"] == expected, (extra, r.headers)
        assert httpx.get(url, headers={**extra, "If-None-Match": expected}).status_code == 304
    ranged = httpx.get(url, headers={"Range": "bytes=0-99", "If-Range": expected})
    assert ranged.status_code == 206 and len(ranged.content) == 100
    stale = httpx.get(url, headers={"Range": "bytes=0-99", "If-Range": '"0-0"'})
    assert stale.status_code == 200 and len(stale.content) == st.st_size
    bad = httpx.get(url, headers={"Range": f"bytes={st.st_size + 10}-",
                                  "Origin": "https://app.example"})  # fmt: skip
    assert bad.status_code == 416
    assert bad.headers.get_list("access-control-allow-origin") == ["*"]


def test_unsafe_requests_are_4xx_and_leak_nothing(site):
    server, _ = site
    for path in ("/media/../../etc/passwd", "/media/talk/../../etc/passwd",
                 "/media/%2e%2e/%2e%2e/etc/passwd", "/media/talk/%2e%2e%2f%2e%2e%2fpasswd",
                 "/media//etc/passwd", "/media/talk/escape.m3u8", "/media/talk/%00.m3u8",
                 "/media/secret/.private", "/p/nonsense/talk/master.m3u8",
                 "/p/" + "A" * 2000 + ".x/talk/master.m3u8"):  # fmt: skip
        request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        status = raw_status(server.port, request.encode())
        assert 400 <= status < 500, (path, status)
    huge = (
        b"GET /media/talk/master.m3u8 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"
    )
    status = raw_status(server.port, huge)
    assert status == 0 or 400 <= status < 500  # refused or connection closed, never a 5xx
    assert httpx.get(f"{server.base}/media/talk/master.m3u8").status_code == 200  # still up


def test_signed_playback(site):
    server, _ = site
    assert httpx.get(f"{server.base}/media/secret/master.m3u8").status_code == 403
    token = make_token(KEY.encode(), "secret", int(time.time()) + 600)
    base = f"{server.base}/p/{token}/secret"
    r = httpx.get(f"{base}/master.m3u8")
    assert r.status_code == 200 and "private" in r.headers["cache-control"]
    out = subprocess.run(
        [ffmpeg.ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i",
         f"{base}/master.m3u8", "-map", "0:v:0", "-map", "0:a:0", "-c", "copy", "-f", "null", "-"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr  # child playlists and segments carry the token
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert httpx.get(f"{server.base}/p/{tampered}/secret/master.m3u8").status_code == 403
    other = make_token(KEY.encode(), "talk", int(time.time()) + 600)
    assert httpx.get(f"{server.base}/p/{other}/secret/master.m3u8").status_code == 403
    expired = make_token(KEY.encode(), "secret", int(time.time()) - 1)
    assert httpx.get(f"{server.base}/p/{expired}/secret/master.m3u8").status_code == 410
    wrong_key = make_token(b"another key", "secret", int(time.time()) + 600)
    assert httpx.get(f"{server.base}/p/{wrong_key}/secret/master.m3u8").status_code == 403


def test_sign_playback_command(site):
    import os

    server, root = site
    env = {**os.environ, "REELFORGE_PLAYBACK_KEY": KEY}
    out = subprocess.run([*CLI, "sign", "playback", "secret", "--root", root, "--base-url",
                          server.base, "--expires-in", "60"], capture_output=True, text=True,
                         env=env, check=True)  # fmt: skip
    assert KEY not in out.stdout + out.stderr
    assert httpx.get(out.stdout.strip()).status_code == 200


def _cf_b64decode(text: str) -> bytes:
    return base64.b64decode(text.replace("-", "+").replace("_", "=").replace("~", "/"))


def test_cloudfront_signatures_verify_with_the_public_key(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "cf.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.NoEncryption()))  # fmt: skip
    public = key.public_key()
    url = "https://d111111abcdef8.cloudfront.net/talk/master.m3u8"
    canned = json.loads(run_cli("sign", "cloudfront", url, "--key-pair-id", "K2JCJMDEHXQW5F",
                                "--private-key", pem, "--json").stdout)  # fmt: skip
    query = dict(p.split("=", 1) for p in canned["url"].split("?", 1)[1].split("&"))
    assert query["Key-Pair-Id"] == "K2JCJMDEHXQW5F" and int(query["Expires"]) == canned["expires"]
    condition = {"DateLessThan": {"AWS:EpochTime": canned["expires"]}}
    policy = json.dumps({"Statement": [{"Resource": url, "Condition": condition}]},
                        separators=(",", ":"))  # fmt: skip
    public.verify(_cf_b64decode(query["Signature"]), policy.encode(), padding.PKCS1v15(),
                  hashes.SHA1())  # fmt: skip
    custom = json.loads(run_cli("sign", "cloudfront", url, "--key-pair-id", "K2", "--private-key",
                                pem, "--ip", "192.0.2.0/24", "--json").stdout)  # fmt: skip
    query = dict(p.split("=", 1) for p in custom["url"].split("?", 1)[1].split("&"))
    policy_bytes = _cf_b64decode(query["Policy"])
    statement = json.loads(policy_bytes)["Statement"][0]
    assert statement["Condition"]["IpAddress"]["AWS:SourceIp"] == "192.0.2.0/24"
    public.verify(_cf_b64decode(query["Signature"]), policy_bytes, padding.PKCS1v15(),
                  hashes.SHA1())  # fmt: skip
    wildcard = "https://d111111abcdef8.cloudfront.net/talk/*"
    args = ("--key-pair-id", "K2", "--private-key", pem, "--cookies", "--resource", wildcard)
    jar = json.loads(run_cli("sign", "cloudfront", url, *args, "--json").stdout)
    cookies = jar["cookies"]
    policy_bytes = _cf_b64decode(cookies["CloudFront-Policy"])
    assert json.loads(policy_bytes)["Statement"][0]["Resource"].endswith("/talk/*")
    public.verify(_cf_b64decode(cookies["CloudFront-Signature"]), policy_bytes,
                  padding.PKCS1v15(), hashes.SHA1())  # fmt: skip
    bad = run_cli("sign", "cloudfront", url, "--key-pair-id", "K2", "--private-key",
                  tmp_path / "none.pem")  # fmt: skip
    assert bad.returncode == 2 and "cannot read the private key" in bad.stderr


@pytest.fixture(scope="module")
def versioned(tmp_path_factory):
    """A short clip published twice into one stream folder."""
    clip = tmp_path_factory.mktemp("vsrc") / "clip.mp4"
    ffmpeg.run(["-i", media("video/bbb_720p_2s_h264.mp4"), "-t", "2", "-c", "copy", clip],
               subject=clip)  # fmt: skip
    ladder = tmp_path_factory.mktemp("vl") / "ladder.json"
    ladder.write_text(json.dumps({"rungs": TEST_LADDER[:2]}))
    root = tmp_path_factory.mktemp("vroot")
    versions = []
    for _ in range(2):
        r = run_cli("publish", clip, "-o", root / "show", "--versioned", "--ladder", ladder,
                    "--preset", "fast", "--no-quality", "--no-thumbnails", "--no-fallback",
                    "--segment-duration", "1", "--json")  # fmt: skip
        assert r.returncode == 0, r.stderr
        versions.append(json.loads(r.stdout)["version"])
        time.sleep(1.1)  # version names carry the second
    return root, versions


def test_versioned_publish_switches_atomically_and_plays(versioned):
    root, (v1, v2) = versioned
    show = root / "show"
    assert (show / v1 / "master.m3u8").is_file() and (show / v2 / "master.m3u8").is_file()
    master = (show / "master.m3u8").read_text()
    uris = [ln for ln in master.splitlines() if ln and not ln.startswith("#")]
    assert uris and all(u.startswith(f"{v2}/") for u in uris)
    assert f'URI="{v2}/' in master and v1 not in master
    assert f"<BaseURL>{v2}/</BaseURL>" in (show / "manifest.mpd").read_text()
    import mpegdash.parser

    mpd = mpegdash.parser.MPEGDASHParser.parse(str(show / "manifest.mpd"))
    assert mpd.base_urls[0].base_url_value == f"{v2}/"
    server = Server(root)
    try:
        page = httpx.get(f"{server.base}/watch/show")
        assert page.status_code == 200
        out = subprocess.run(
            [ffmpeg.ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i",
             f"{server.base}/media/show/master.m3u8", "-map", "0:v:0", "-c", "copy", "-f",
             "null", "-"], capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        assert out.returncode == 0, out.stderr
    finally:
        server.stop()
    current = json.loads((show / "current.json").read_text())
    assert current["version"] == v2
    assert [h["version"] for h in current["history"]] == [v1, v2]


def test_gc_keeps_what_is_pointed_at(versioned):
    root, (v1, v2) = versioned
    show = root / "show"
    kept = json.loads(run_cli("gc", show, "--grace", "3600", "--json").stdout)
    assert kept["removed"] == {str(show): []} and (show / v1).is_dir()
    dry = json.loads(run_cli("gc", show, "--grace", "0", "--dry-run", "--json").stdout)
    assert dry["removed"] == {str(show): [v1]} and (show / v1).is_dir()
    done = json.loads(run_cli("gc", show, "--grace", "0", "--json").stdout)
    assert done["removed"] == {str(show): [v1]}
    assert not (show / v1).exists() and (show / v2 / "master.m3u8").is_file()
    bad = run_cli("gc", root)
    assert bad.returncode == 2 and "not a versioned stream folder" in bad.stderr


def test_gc_waits_for_no_publish(versioned, tmp_path):
    """gc takes the stream's lock: while a publish holds it, gc refuses and removes nothing."""
    import sys

    root, (_, current) = versioned
    stream = tmp_path / "show"
    shutil.copytree(root / "show", stream, symlinks=True)
    old = stream / "v20200101T000000Z-abcd"  # a version nothing points to
    shutil.copytree(stream / current, old)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom reelforge.outputs import stream_folder\n"
         f"with stream_folder({str(stream)!r}):\n    print('held', flush=True)\n"
         "    time.sleep(60)"], stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = run_cli("gc", stream, "--grace", "0")
        assert busy.returncode == 2 and str(holder.pid) in busy.stderr, busy.stderr
        assert old.is_dir()
        holder.kill()
        holder.wait()
        done = json.loads(run_cli("gc", stream, "--grace", "0", "--json").stdout)
        assert done["removed"] == {str(stream): [old.name]} and not old.exists()
    finally:
        holder.kill()
        holder.wait()
