"""What the origin lets a request read: private streams, tokens for other streams, symlinks,
dot segments and encodings, all decided on the resolved real path; raw requests over
loopback against the real server (granian and uvicorn), plus a bounded fuzz run."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import random
import shutil
import socket
import time

import httpx
import pytest
from conftest import assert_refused, run_cli
from origins import start_origin
from PIL import Image

from reelforge.delivery.app import ErrorLog
from reelforge.delivery.signing import make_token

KEY = "access-test-key"
CANARY = "#private-canary-7f3a"  # in every text file of the private stream
OUTSIDE = "outside-canary-91c2"  # in the file outside the root


def _png(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def tree(tmp_path_factory, talk):
    """pub1, pub3 (public) and priv (``.private``, canaries in its text files) copied from
    a published stream, with symlinks into priv, out of the root and in loops."""
    published, _ = talk
    base = tmp_path_factory.mktemp("access")
    root = base / "root"
    root.mkdir()
    outside = base / "outside"
    outside.mkdir()
    (outside / "passwd").write_text(OUTSIDE)
    for name in ("pub1", "pub3", "priv"):
        shutil.copytree(published, root / name)
    priv = root / "priv"
    (priv / ".private").write_text("")
    (priv / "notes.txt").write_text(CANARY)
    for playlist in priv.rglob("*.m3u8"):
        playlist.write_text(playlist.read_text() + CANARY + "\n")
    (priv / "secret.png").write_bytes(_png((255, 0, 0)))
    pub1 = root / "pub1"
    (pub1 / "photo.png").write_bytes(_png((0, 0, 255)))
    (pub1 / "tolink").symlink_to("../priv")  # a folder link into the private stream
    (pub1 / "leak.m3u8").symlink_to("../priv/notes.txt")  # a file link into it
    (pub1 / "secret.png").symlink_to("../priv/secret.png")
    (pub1 / "escape").symlink_to(outside / "passwd")
    (pub1 / "outdir").symlink_to(outside)
    (pub1 / "loop").symlink_to("loop")
    (pub1 / "loopa").symlink_to("loopb")
    (pub1 / "loopb").symlink_to("loopa")
    # pub3's audio playlist is the private one: its page must not inline it
    audio = pub1.joinpath("audio").iterdir().__next__().name
    target = root / "pub3" / "audio" / audio / "playlist.m3u8"
    target.unlink()
    target.symlink_to(priv / "audio" / audio / "playlist.m3u8")
    (root / "alias").symlink_to("priv")  # a stream-level link: listed as nothing public
    return root, outside


def _token(prefix: str, seconds: int = 600) -> str:
    return make_token(KEY.encode(), prefix, int(time.time()) + seconds)


ENV = {"REELFORGE_PLAYBACK_KEY": KEY, "REELFORGE_IMAGE_UNSIGNED": "1"}


@pytest.fixture(scope="module", params=["granian", "uvicorn", "nginx"])
def origin(request, tree):
    root, _ = tree
    server = start_origin(request.param, root, env=ENV)
    yield server, root
    server.stop()


def raw(port: int, target: str, headers: str = "", method: str = "GET") -> tuple[int, bytes]:
    """Send one request line byte for byte (no client normalisation); status and body
    (0 when the server closed the connection without answering)."""
    request = f"{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request.encode("latin-1"))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    data = b"".join(chunks)
    if not data.startswith(b"HTTP/"):
        return 0, b""
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_a_token_for_one_stream_opens_no_other(origin):
    """Scope checked on the raw path, file looked up after ``..``: now one resolved path."""
    server, _ = origin
    pub1 = _token("pub1")
    for target in (f"/p/{pub1}/pub1/../priv/master.m3u8", f"/p/{pub1}/pub1/%2e%2e/priv/notes.txt",
                   f"/p/{pub1}/pub1/%2E%2E/priv/notes.txt", f"/p/{pub1}/pub1/.%2e/priv/notes.txt",
                   f"/p/{pub1}/pub1/tolink/notes.txt", f"/p/{pub1}/pub1/leak.m3u8",
                   f"/p/{pub1}/pub1/../pub3/master.m3u8",
                   f"/p/{pub1}/priv/master.m3u8"):  # fmt: skip
        status, body = raw(server.port, target)
        assert status == 403, (target, status)
        assert CANARY.encode() not in body
    status, body = raw(server.port, f"/p/{pub1}/pub1/master.m3u8")
    assert status == 200 and b"#EXTM3U" in body and CANARY.encode() not in body
    priv = _token("priv")
    status, body = raw(server.port, f"/p/{priv}/priv/notes.txt")
    assert status == 200 and body == CANARY.encode()
    # the private stream's own token through a link or dot segments reaches the same file
    assert raw(server.port, f"/p/{priv}/pub1/../priv/notes.txt")[0] == 200


def test_private_files_need_a_token_however_they_are_named(origin):
    server, _ = origin
    for target in ("/media/priv/master.m3u8", "/media/priv/notes.txt",
                   "/media/pub1/../priv/notes.txt", "/media/pub1/%2e%2e/priv/notes.txt",
                   "/media/pub1/tolink/notes.txt", "/media/pub1/leak.m3u8",
                   "/media/alias/notes.txt", "/media/priv/no-such-file.m4s",
                   "/media/pub1/tolink/no-such-file"):  # fmt: skip
        status, body = raw(server.port, target)
        assert status == 403, (target, status)  # 403 whether or not the file exists
        assert CANARY.encode() not in body


def test_player_page_and_index_obey_the_same_rule(origin):
    server, _ = origin
    assert raw(server.port, "/watch/priv")[0] == 403
    assert raw(server.port, "/watch/alias")[0] == 403
    assert raw(server.port, "/watch/pub1/../priv")[0] == 403
    status, body = raw(server.port, "/")
    assert status == 200
    assert b"/watch/pub1" in body and b"/watch/pub3" in body
    assert b"priv" not in body and b"alias" not in body
    # a public page never inlines a private byte, even through a link in its own folder
    status, body = raw(server.port, "/watch/pub3", "Accept-Encoding: identity\r\n")
    assert status == 200 and b"#EXTM3U" in body and CANARY.encode() not in body
    boot = json.loads(
        body.split(b'id="bootstrap" type="application/json">')[1].split(b"</script>")[0]
    )
    assert boot["files"] and not any("audio" in key for key in boot["files"])
    # with the stream's token the page plays: inlined files and URLs carry the token
    priv = _token("priv")
    status, body = raw(server.port, f"/p/{priv}/watch/priv", "Accept-Encoding: identity\r\n")
    assert status == 200 and CANARY.encode() in body
    assert f"/p/{priv}/priv/master.m3u8".encode() in body
    page = httpx.get(f"{server.base}/p/{priv}/watch/priv")
    assert page.headers["cache-control"].startswith("private")
    listed = httpx.get(f"{server.base}/p/{priv}/").text
    assert f"/p/{priv}/watch/priv" in listed and "pub1" not in listed
    assert raw(server.port, f"/p/{_token('pub1')}/watch/priv")[0] == 403
    # a page never answers for what is not a stream
    assert raw(server.port, "/watch/pub1/video")[0] == 404
    assert raw(server.port, "/watch/..")[0] == 404


def test_images_obey_the_rule(origin):
    server, _ = origin
    ok = httpx.get(f"{server.base}/img/unsafe/32x0/fit/pub1/photo.png")
    assert ok.status_code == 200
    for target in ("/img/unsafe/32x0/fit/priv/secret.png", "/img/unsafe/32x0/fit/pub1/secret.png",
                   "/img/unsafe/32x0/fit/pub1/tolink/secret.png",
                   "/img/unsafe/32x0/fit/pub1/%2e%2e/priv/secret.png"):  # fmt: skip
        assert raw(server.port, target)[0] == 403, target
    for target in ("/img/unsafe/32x0/fit/pub1/escape", "/img/unsafe/32x0/fit/pub1/loop",
                   "/img/unsafe/32x0/fit/pub1/outdir/passwd"):  # fmt: skip
        assert raw(server.port, target)[0] == 404, target


def test_file_system_errors_are_404_never_500(origin):
    server, _ = origin
    for target in ("/media/" + "a" * 256 + "/x", "/media/pub1/" + "b" * 300,
                   "/media/pub1/loop", "/media/pub1/loopa/x", "/media/pub1/escape",
                   "/media/pub1/outdir/passwd", "/media/pub1/%00", "/media/pub1/a%5cb",
                   "/media/pub1/" + "c/" * 1500, "/media/.", "/media/pub1/.private",
                   "/media/pub1/video", "/watch/" + "d" * 300,
                   "/p/" + _token("pub1") + "/pub1/" + "e" * 400):  # fmt: skip
        status, body = raw(server.port, target)
        assert 400 <= status < 500, (target[:60], status)
        assert OUTSIDE.encode() not in body


@pytest.mark.parametrize("kind", ["serve", "nginx"])
def test_root_private_marker_and_root_tokens(tree, kind):
    root, _ = tree
    server = start_origin(kind, root / "priv", env=ENV)
    try:
        for target in ("/", "/media/master.m3u8", "/media/notes.txt"):
            assert raw(server.port, target)[0] == 403, target
        whole = _token(".")
        status, body = raw(server.port, f"/p/{whole}/master.m3u8")
        assert status == 200 and CANARY.encode() in body
        assert raw(server.port, f"/p/{whole}/")[0] == 200  # the root stream's own page
    finally:
        server.stop()
    # a root that is not itself a stream: a "." token opens nothing
    server = start_origin(kind, root, env=ENV)
    try:
        assert raw(server.port, f"/p/{_token('.')}/priv/master.m3u8")[0] == 403
    finally:
        server.stop()


def test_invalid_ranges_are_ignored_unsatisfiable_ones_refused(origin):
    server, root = origin
    rel = next((root / "pub1").glob("fallback-*.mp4")).relative_to(root).as_posix()
    size = (root / rel).stat().st_size
    for value in ("bytes=5-2", "bytes=abc", "pages=1-2", "bytes=-", "bytes 0-10", "bytes=1-2-3"):
        r = httpx.get(f"{server.base}/media/{rel}", headers={"Range": value})
        assert r.status_code == 200 and len(r.content) == size, value
    for value in (f"bytes={size}-", "bytes=-0", "bytes=0-1,4-5"):
        r = httpx.get(f"{server.base}/media/{rel}", headers={"Range": value})
        assert r.status_code == 416, value
    r = httpx.get(f"{server.base}/media/{rel}", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and len(r.content) == 10


def test_sign_playback_refuses_what_is_not_a_stream_folder(tree):
    root, _ = tree
    env = {**os.environ, "REELFORGE_PLAYBACK_KEY": KEY}
    for prefix in ("", "/", "../priv", "pub1/../priv", "priv/video", "nothing", ".", "./priv"):
        result = run_cli("sign", "playback", prefix, "--root", root, env=env)
        assert_refused(result)
        assert KEY not in result.stderr
    ok = run_cli("sign", "playback", "priv", "--root", root, "--json", env=env)
    assert ok.returncode == 0, ok.stderr
    assert "/priv/master.m3u8" in json.loads(ok.stdout)["url"]
    whole = run_cli("sign", "playback", ".", "--root", root / "priv", env=env)
    assert whole.returncode == 0, whole.stderr


def test_serve_binds_before_printing(tree):
    root, _ = tree
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("serve", root, "--port", port, timeout=30)
        assert_refused(result, f"127.0.0.1:{port}", "in use")
        assert "Serving" not in result.stdout
    for port in ("99999", "0", "-1"):
        assert_refused(run_cli("serve", root, "--port", port, timeout=30), "--port")
    assert_refused(run_cli("serve", root, "--host", "no.such.host.invalid", timeout=30), "--host")


def test_a_5xx_that_happens_anyway_is_logged(caplog):
    """The origin's error middleware around an app that fails: the traceback is logged."""

    async def failing(scope, receive, send):
        raise RuntimeError("boom")

    async def call():
        sent = []

        async def receive():
            return {"type": "http.request", "body": b""}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/media/x"}
        with pytest.raises(RuntimeError):
            await ErrorLog(failing)(scope, receive, send)

    with caplog.at_level(logging.ERROR, logger="reelforge.origin"):
        asyncio.run(call())
    record = next(r for r in caplog.records if r.name == "reelforge.origin")
    assert "/media/x" in record.getMessage() and record.exc_info[0] is RuntimeError


PARTS = ["pub1", "pub3", "priv", "alias", "..", ".", "%2e%2e", "%2E%2e", ".%2e", "%2f", "%5c",
         "\\", "%00", "a" * 256, "loop", "loopa", "escape", "outdir", "passwd", "tolink",
         "leak.m3u8", "notes.txt", "master.m3u8", "manifest.mpd", ".private", "%252e%252e", "",
         "video", "audio", "secret.png", "photo.png", "%c0%ae%c0%ae", "%ff", "~", "*",
         "report.json", "..%2f..%2f", "%2e%2e%2f%2e%2e%2foutside"]  # fmt: skip
RANGES = ["", "bytes=0-10", "bytes=5-2", "bytes=-0", "bytes=999999999-", "bytes=0-1,3-4",
          "bytes=abc", "pages=1-2", "bytes=" + "9" * 30 + "-", "bytes=-5"]  # fmt: skip


def _fuzz_targets(rng: random.Random, tokens: dict[str, str]) -> list[tuple[str, str, bool]]:
    """(target, headers, carries priv's token) for random abusive requests."""
    out = []
    for _ in range(2000):
        token_name = rng.choice(["pub1", "priv", "bad", "expired", "root", None, None])
        token = tokens.get(token_name) if token_name else None
        prefix = rng.choice(["/media/", "/watch/", "/img/unsafe/32x0/fit/", "/"]) if token is None \
            else rng.choice([f"/p/{token}/", f"/p/{token}/watch/"])  # fmt: skip
        path = "/".join(rng.choice(PARTS) for _ in range(rng.randint(1, 5)))
        headers = ""
        if value := rng.choice(RANGES):
            headers += f"Range: {value}\r\n"
        out.append((prefix + path, headers, token_name == "priv"))
    return out


def test_fuzz_no_5xx_nothing_outside_nothing_private(origin):
    server, _ = origin
    tokens = {"pub1": _token("pub1"), "priv": _token("priv"), "root": _token("."),
              "bad": _token("priv")[:-2] + "xx", "expired": _token("priv", -10)}  # fmt: skip
    rng = random.Random(20261201)
    statuses: dict[int, int] = {}
    for target, headers, with_priv_token in _fuzz_targets(rng, tokens):
        status, body = raw(server.port, target, headers + "Accept-Encoding: identity\r\n")
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500 and status != 0, (target[:80], headers, status)
        assert OUTSIDE.encode() not in body, target
        if not with_priv_token:
            assert CANARY.encode() not in body, (target, headers)
            if target.startswith("/img/") and status == 200:
                with Image.open(io.BytesIO(body)) as img:
                    red, _, blue = img.convert("RGB").resize((1, 1)).getpixel((0, 0))
                assert blue > red, target  # the public photo, never the private one
    assert sum(statuses.values()) == 2000
    assert statuses.get(200, 0) > 0 and statuses.get(403, 0) > 0 and statuses.get(404, 0) > 0
