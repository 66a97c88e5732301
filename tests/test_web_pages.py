"""The service's pages: `reelforge web` for real, driven by Debian's Chromium (Playwright)
and by httpx: sign-in, uploads cut mid-way and resumed, live progress, the player, the
report's charts, the jobs page, CSRF, escaping, and layouts that fit a phone."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shutil
import signal
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browsers import chromium
from conftest import media, run_cli
from test_web import Web, follow, tus_upload

from reelforge.media import ffmpeg

XSS = "<script>alert(1)</script>"
CLIP = "video/bbb_720p_2s_h264.mp4"
FAST = {"preset": "fast", "quality": False, "thumbnails": False, "fallback": False}
WIDTHS = (390, 1280)

STORY = """\
title: Folder Story
cast:
  S1: {face: faces/keeper.png, voice: {backend: espeak}}
scenes:
  - script: scenes/01.txt
publish: {preset: fast, quality: false, fallback: false, thumbnails: false}
"""


# --- the world around the service ---------------------------------------------------------


class CuttingProxy:
    """A loopback TCP proxy in front of the service that drops the connection carrying the
    first ``PATCH /api/uploads/...`` once ``cut_after`` bytes of its body have passed, and
    lets everything else through; ``patches`` records each PATCH's ``Upload-Offset``.
    While ``block`` is set, every later PATCH is dropped before it reaches the service
    (``blocked`` counts them): a connection that stays down."""

    MARK = b"PATCH /api/uploads/"

    def __init__(self, target: int, cut_after: int) -> None:
        self.target, self.cut_after = target, cut_after
        self.patches: list[int] = []
        self.cut_done = False
        self.block = False
        self.blocked = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target))
        threading.Thread(target=self._down, args=(upstream, client), daemon=True).start()
        try:
            self._up(client, upstream)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def _up(self, client: socket.socket, upstream: socket.socket) -> None:
        history, scanned, sent, cut_at = bytearray(), 0, 0, None
        while data := client.recv(65536):
            history += data
            while (start := history.find(self.MARK, scanned)) >= 0:
                end = history.find(b"\r\n\r\n", start)
                if end < 0:
                    break
                head = bytes(history[start:end]).decode("latin-1")
                offset = re.search(r"(?im)^upload-offset:\s*(\d+)", head)
                with self.lock:
                    self.patches.append(int(offset.group(1)) if offset else -1)
                    if not self.cut_done:
                        self.cut_done, cut_at = True, end + 4 + self.cut_after
                    elif self.block:
                        self.blocked, cut_at = self.blocked + 1, start
                scanned = end
            else:
                scanned = max(scanned, len(history) - len(self.MARK))
            limit = len(history) if cut_at is None else min(len(history), cut_at)
            if limit > sent:
                upstream.sendall(history[sent:limit])
                sent = limit
            if cut_at is not None and sent >= cut_at:
                time.sleep(1.0)  # the service reads what arrived, then the connection drops
                return  # mid-body

    @staticmethod
    def _down(upstream: socket.socket, client: socket.socket) -> None:
        try:
            while data := upstream.recv(65536):
                client.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)


class OtherSite:
    """Another origin on loopback serving one page whose form posts to the service."""

    def __init__(self, html: str) -> None:
        body = html.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def hold_wrapper(folder: Path) -> tuple[Path, Path, Path]:
    """An ffmpeg that waits while ``hold`` exists (saying so in ``held``), else the real one."""
    wrapper, hold, held = folder / "ffmpeg", folder / "hold", folder / "held"
    wrapper.write_text(f'#!/bin/sh\nwhile [ -e "{hold}" ]; do touch "{held}"; sleep 0.1; done\n'
                       f'exec "{ffmpeg.ffmpeg_exe()}" "$@"\n')  # fmt: skip
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper, hold, held


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tools(tmp_path_factory) -> tuple[Path, Path, Path]:
    return hold_wrapper(tmp_path_factory.mktemp("tools"))


@pytest.fixture(scope="module")
def server(tmp_path_factory, tools):
    if not (Path(__file__).parents[1] / "node_modules" / "tus-js-client").is_dir():
        pytest.skip("tus-js-client is not installed (npm ci)")
    web = Web(tmp_path_factory.mktemp("pages") / "data",
              env={"REELFORGE_FFMPEG": str(tools[0])}).start()  # fmt: skip
    yield web
    web.stop()


@pytest.fixture(scope="module")
def admin(server) -> str:
    return server.token("admin", "root")


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def errored(server, tmp_path_factory) -> tuple[str, str]:
    """(token, video id) of a video whose upload is a text file, titled like an attack."""
    token = server.token("upload", "careless")
    text = tmp_path_factory.mktemp("text") / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    url = tus_upload(server, token, text)
    with server.client(token) as c:
        r = c.post("/api/videos", json={"upload": url, "title": XSS, "publish": FAST})
        assert r.status_code == 201, r.text
    video_id = r.json()["id"]
    assert follow(server, token, video_id)[-1]["status"] == "errored"
    return token, video_id


@contextlib.contextmanager
def session(server: Web, token: str) -> Iterator[httpx.Client]:
    """An httpx client signed in through the sign-in form (cookie jar, no bearer)."""
    with httpx.Client(base_url=server.base, timeout=30) as c:
        r = c.post("/signin", data={"token": token, "next": "/"})
        assert r.status_code == 303 and "rf_session" in c.cookies
        yield c


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]{32})"', html).group(1)


def sign_in(page, base: str, token: str, then: str = "/") -> None:
    """Sign in with the keyboard alone, landing on ``then``."""
    page.goto(f"{base}{then}")
    assert "/signin?next=" in page.url or then == "/", page.url
    page.focus("#token")
    page.keyboard.type(token)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}{then}")


def fits(page, name: str, shots: Path) -> None:
    """Nothing overflows sideways at a phone's and a desktop's width (screenshots kept)."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(50)
        sizes = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
        assert sizes[0] <= sizes[1], (name, width, sizes)
    page.set_viewport_size({"width": 1280, "height": 900})


def wait_until(page, expression: str, timeout: float = 30) -> None:
    """Poll ``expression`` in the page until it is true (the pages' CSP forbids eval, which
    Playwright's own wait_for_function needs)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        page.wait_for_timeout(100)


def local_only(requests: list[str], *bases: str) -> None:
    outside = [u for u in requests if not u.startswith((*bases, "data:", "blob:"))]
    assert not outside, outside


# --- without a browser ----------------------------------------------------------------------


def test_signin_sets_a_strict_httponly_cookie_and_signout_needs_its_csrf(server):
    token = server.token("read", "viewer")
    with httpx.Client(base_url=server.base, timeout=30) as c:
        r = c.get("/")
        assert r.status_code == 303 and r.headers["location"] == "/signin"
        r = c.get("/videos/v0123?tab=1")
        assert r.status_code == 303
        assert r.headers["location"] == "/signin?next=%2Fvideos%2Fv0123%3Ftab%3D1"
        assert c.get("/signin").status_code == 200
        r = c.post("/signin", data={"token": "rf_nope", "next": "/"})
        assert r.status_code == 401 and "not valid" in r.text and "rf_session" not in c.cookies
        r = c.post("/signin", data={"token": token, "next": "/videos/v0123?tab=1"})
        assert r.status_code == 303 and r.headers["location"] == "/videos/v0123?tab=1"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("rf_session=")
        flags = {f.strip().split("=")[0].lower() for f in cookie.split(";")[1:]}
        assert {"httponly", "path", "max-age"} <= flags and "secure" not in flags  # http here
        assert re.search(r"(?i)samesite=strict", cookie) and re.search(r"(?i)path=/(;|$)", cookie)
        page = c.get("/")
        assert page.status_code == 200 and "viewer" in page.text
        assert page.headers["cache-control"] == "no-store"
        assert "default-src 'self'" in page.headers["content-security-policy"]
        # a read token sees the library but not the upload page or the jobs page
        assert c.get("/upload").status_code == 403 and c.get("/jobs").status_code == 403
        assert c.post("/signout").status_code == 403  # no CSRF token: still signed in
        assert c.get("/").status_code == 200
        r = c.post("/signout", data={"csrf": csrf_of(page.text)})
        assert r.status_code == 303 and r.headers["location"] == "/signin"
        assert "rf_session" not in c.cookies
        assert c.get("/").status_code == 303


def test_the_cookie_is_secure_over_https(tmp_path):
    """The app in-process behind an https base URL (a TLS proxy's view of it)."""
    from starlette.testclient import TestClient

    from reelforge.web import settings as web_settings
    from reelforge.web.app import create_app
    from reelforge.web.db import open_database
    from reelforge.web.tokens import TokenStore

    settings = web_settings.load(tmp_path / "data", {})
    _, token = TokenStore(open_database(settings.db_path)).create("tls", "read")
    app = create_app(settings, dict(os.environ))  # its lifespan (the job pool) not started
    c = TestClient(app, base_url="https://reelforge.test", follow_redirects=False)
    r = c.post("/signin", data={"token": token})
    assert r.status_code == 303
    assert re.search(r"(?i);\s*secure", r.headers["set-cookie"])


@pytest.mark.parametrize("target", [
    "//evil.example/", "https://evil.example/", "/\\evil.example", "\\\\evil.example",
    "javascript:alert(1)", "/\r\nSet-Cookie: x=1", "http:/evil.example", " /videos",
    "evil.example", "/" + "a" * 3000, "",
])  # fmt: skip
def test_next_never_leaves_the_site(server, admin, target):
    with httpx.Client(base_url=server.base, timeout=30) as c:
        r = c.post("/signin", data={"token": admin, "next": target})
        assert r.status_code == 303 and r.headers["location"] == "/", target
        r = c.get("/signin", params={"next": target})  # signed in: straight back
        assert r.status_code == 303 and r.headers["location"] == "/", target


def test_forms_without_their_csrf_token_or_from_elsewhere_are_refused(server, errored):
    token, video_id = errored
    with session(server, token) as c:
        csrf = csrf_of(c.get(f"/videos/{video_id}").text)
        for data, headers in [({}, {}), ({"csrf": "0" * 32}, {}),
                              ({"csrf": csrf}, {"Origin": "http://127.0.0.1:9"}),
                              ({"csrf": csrf}, {"Sec-Fetch-Site": "cross-site"})]:  # fmt: skip
            for action in ("delete", "retry"):
                r = c.post(f"/videos/{video_id}/{action}",
                           data={**data, "confirmed": "yes"}, headers=headers)  # fmt: skip
                assert r.status_code == 403, (action, data, headers, r.status_code)
        # the API refuses a cookie without the header too
        assert c.delete(f"/api/videos/{video_id}").status_code == 403
        assert c.get(f"/api/videos/{video_id}").status_code == 200  # still there
        # a form with the token but no confirmation asks first
        r = c.post(f"/videos/{video_id}/delete", data={"csrf": csrf})
        assert r.status_code == 200 and "Delete it" in r.text
        assert c.get(f"/api/videos/{video_id}").status_code == 200


def test_pages_escape_what_users_wrote(server, admin, errored):
    video_id = errored[1]
    with session(server, admin) as c:
        for path in ("/", f"/videos/{video_id}", "/jobs"):
            r = c.get(path)
            assert r.status_code == 200, path
            assert XSS not in r.text, path
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text, path


def test_what_clients_send_to_pages_gets_4xx_never_5xx(server, errored):
    token, video_id = errored
    with session(server, token) as c:
        csrf = csrf_of(c.get("/").text)
        for path in ("/videos/%00", "/videos/" + "v" * 300, "/videos/..%2f..%2fetc",
                     f"/videos/{video_id}/report", "/videos/nope/steps", "/static/nope.js",
                     "/static/..%2f..%2fpages.py", "/static/vendor/..%2ftus.min.js",
                     "/?before=%00%ff", "/?before=" + "x" * 3000):  # fmt: skip
            r = c.get(path)
            assert r.status_code < 500, (path, r.status_code)
            assert r.status_code == 200 or r.status_code >= 400, (path, r.status_code)
        for path in ("/videos/%00", "/videos/" + "v" * 300, "/videos/nope/steps"):
            assert c.get(path).status_code == 404, path
        assert c.get(f"/videos/{video_id}/report").status_code == 409  # no stream to report
        posts = [
            ("/signin", {"content": b"\xff\x00", "headers": {"content-type": "text/plain"}}),
            ("/signin", {"content": b"--x\r\n", "headers": {
                "content-type": "multipart/form-data; boundary=x"}}),
            ("/upload", {"data": {"csrf": csrf}}),
            ("/upload", {"data": {"csrf": csrf}, "files": {"file": ("a.mp4", b"", "video/mp4")}}),
            ("/upload/story", {"data": {"csrf": csrf}}),
            ("/upload/story", {"data": {"csrf": csrf},
                               "files": {"story": ("story.yaml", b"title: [", "text/yaml")}}),
            ("/upload/story", {"data": {"csrf": csrf}, "files": [
                ("story", ("story.yaml", STORY.encode(), "text/yaml")),
                ("files", ("s/../../etc/passwd", b"x", "text/plain"))]}),
            (f"/videos/{video_id}/retry", {"data": {"csrf": csrf, "next": "//evil"}}),
        ]  # fmt: skip
        for path, kwargs in posts:
            r = c.post(path, **kwargs)
            assert 300 <= r.status_code < 500, (path, r.status_code, r.text[:300])
        r = c.get("/static/site.css")
        assert r.status_code == 200 and r.headers["cache-control"] == "public, max-age=300"
        versioned = re.search(r'href="(/static/site\.css\?v=\w+)"', c.get("/").text).group(1)
        assert "immutable" in c.get(versioned).headers["cache-control"]
        assert c.get("/static/vendor/tus.min.js").status_code == 200


def test_without_scripts_the_forms_still_upload_make_and_delete(server):
    token = server.token("upload", "plain")
    face = media("faces/astronaut_eileen_collins.png").read_bytes()
    with session(server, token) as c:
        csrf = csrf_of(c.get("/upload").text)
        with media(CLIP).open("rb") as f:
            r = c.post("/upload", data={"csrf": csrf, "title": "Plain", "preset": "fast"},
                       files={"file": ("clip.mp4", f, "video/mp4")})  # fmt: skip
        assert r.status_code == 303 and r.headers["location"].startswith("/videos/v")
        video_id = r.headers["location"].rsplit("/", 1)[1]
        video = c.get(f"/api/videos/{video_id}").json()
        assert video["title"] == "Plain" and video["private"] is False  # box left unticked
        # a picked folder posts its files under the folder's name, hidden files with them
        line = b"[S1] The light is on.\n"
        folder = [("story.yaml", STORY.encode()), ("faces/keeper.png", face),
                  ("scenes/01.txt", line), (".DS_Store", b"\0\1")]  # fmt: skip
        r = c.post("/upload/story", data={"csrf": csrf, "private": "on"},
                   files=[("files", (f"my-story/{n}", b, "application/octet-stream"))
                          for n, b in folder])  # fmt: skip
        assert r.status_code == 303, r.text
        story_id = r.headers["location"].rsplit("/", 1)[1]
        story = c.get(f"/api/videos/{story_id}").json()
        assert story["kind"] == "story" and story["title"] == "Folder Story"
        assert sorted(p.name for p in (server.data / "sources" / story_id).rglob("*")
                      if p.is_file()) == ["01.txt", "keeper.png", "story.yaml"]  # fmt: skip
        first = c.get("/?limit=1").text  # newest first, one a page
        assert story_id in first and video_id not in first
        older = re.search(r'href="(/\?before=\w+&amp;limit=1)" rel="next"', first).group(1)
        second = c.get(older.replace("&amp;", "&")).text
        assert video_id in second and story_id not in second and 'rel="next"' not in second
        for vid in (video_id, story_id):  # the form asks first, then deletes
            r = c.post(f"/videos/{vid}/delete", data={"csrf": csrf})
            assert r.status_code == 200 and "Delete it" in r.text
            r = c.post(f"/videos/{vid}/delete", data={"csrf": csrf, "confirmed": "yes"})
            assert r.status_code == 303 and r.headers["location"] == "/"
            assert c.get(f"/api/videos/{vid}").status_code == 404
            assert not (server.data / "sources" / vid).exists()


# --- in the browser -------------------------------------------------------------------------


def test_an_upload_cut_mid_way_resumes_then_plays_with_its_report(server, context, tmp_path):
    token = server.token("upload", "editor")
    src = media(CLIP)
    proxy = CuttingProxy(server.port, cut_after=100_000)
    requests: list[str] = []
    try:
        page = context.new_page()
        page.on("request", lambda r: requests.append(r.url))
        sign_in(page, proxy.base, token, "/upload")
        page.keyboard.press("Tab")  # the skip link first, with a visible focus ring
        assert page.evaluate("document.activeElement.className") == "skip"
        assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
        fits(page, "upload", tmp_path)
        page.select_option("#preset", "fast")
        assert page.is_checked("#quality")  # VMAF on this one: the report charts need it
        page.fill("#title", "Bunny & <friends>")
        page.set_input_files("#files", str(src))
        page.click("#start")
        page.wait_for_selector("#queue li[data-state=published]", timeout=60_000)
        # the first PATCH was cut; a later one went on from where the server stood
        assert proxy.cut_done and proxy.patches[0] == 0
        assert any(0 < offset < src.stat().st_size for offset in proxy.patches[1:]), proxy.patches
        assert page.evaluate("document.querySelector('#queue progress').value") == 100
        page.click("#queue a.video-link")
        page.wait_for_url(re.compile(r".*/videos/v[0-9a-f]+$"))
        assert page.text_content("h1") == "Bunny & <friends>"
        seen = page.evaluate("document.getElementById('state').dataset.status")
        if seen != "ready":  # live progress until ready, then the page reloads itself
            wait_until(page, "document.getElementById('progress').value > 0", 60)
        page.wait_for_selector("#video", timeout=90_000)
        assert page.get_attribute("#state", "data-status") == "ready"
        steps = page.eval_on_selector_all("#steps li", "l => l.map(e => e.dataset.status)")
        assert steps and set(steps) <= {"done", "cached", "running"}, steps
        page.evaluate("document.getElementById('video').play()")
        wait_until(page, "document.getElementById('video').currentTime > 0.3")
        levels = page.eval_on_selector_all("#levels option", "o => o.length")
        rungs = page.eval_on_selector_all("#renditions li", "l => l.length")
        assert rungs >= 3 and levels == rungs + 1  # Auto and every rung
        assert page.eval_on_selector_all("#audio-list li", "l => l.length") == 1
        fits(page, "video", tmp_path)
        page.click("text=Report")
        page.wait_for_url(re.compile(r".*/report$"))
        deadline = time.monotonic() + 60
        while not page.query_selector("figure[data-chart=vmaf]"):  # VMAF follows playable
            assert time.monotonic() < deadline, page.text_content("main")
            page.wait_for_timeout(500)
            page.reload()
        marks = {"rate-quality": "circle", "bitrate": "polyline", "vmaf": "rect.bar"}
        count = "e => e.length"
        charts = {
            name: page.eval_on_selector_all(f"figure[data-chart={name}] svg {mark}", count)
            for name, mark in marks.items()
        }
        assert charts == {"rate-quality": rungs, "bitrate": rungs, "vmaf": rungs}, charts
        for name in charts:
            figure = f"figure[data-chart={name}]"
            assert page.text_content(f"{figure} figcaption").strip()
            assert page.eval_on_selector_all(f"{figure} text.axis", "e => e.length") >= 1
        assert page.eval_on_selector_all("figure[data-chart=bitrate] .legend li",
                                         "e => e.length") == rungs  # fmt: skip
        fits(page, "report", tmp_path)
        page.emulate_media(color_scheme="dark")
        dark = page.evaluate("getComputedStyle(document.body).backgroundColor")
        page.emulate_media(color_scheme="light")
        light = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert dark != light
        page.goto(proxy.base + "/")
        assert page.locator(".card", has_text="Bunny & <friends>").count() == 1
        fits(page, "library", tmp_path)
        local_only(requests, proxy.base)
    finally:
        proxy.close()


def test_a_crashed_job_shows_on_the_jobs_page_and_retry_finishes_it(
    server, admin, context, tools, errored, tmp_path
):
    _, hold, held = tools
    token = server.token("upload", "crashy")
    url = tus_upload(server, token, media(CLIP))
    hold.touch()
    try:
        with server.client(token) as c:
            r = c.post("/api/videos", json={"upload": url, "title": "Crashy", "publish": FAST})
            video_id = r.json()["id"]
        env = {**server.env, "REELFORGE_STATE": str(server.data / "state")}
        deadline = time.monotonic() + 120
        while True:  # the job runs (an earlier video's extras may hold the pool a while)
            jobs = json.loads(run_cli("jobs", "list", "--json", env=env).stdout)
            job = next(j for j in jobs if j["subject"] == video_id)
            if job["status"] == "running" and held.exists():
                break
            assert time.monotonic() < deadline, job["status"]
            time.sleep(0.2)
        os.killpg(job["pid"], signal.SIGKILL)  # the job's process dies without a word
    finally:
        hold.unlink()
    assert follow(server, token, video_id)[-1]["status"] == "errored"
    page = context.new_page()
    sign_in(page, server.base, admin, "/jobs")
    crashed = page.locator(f"li.failure[data-video={video_id}]")
    assert "Crashy" in crashed.text_content() and "killed by SIGKILL" in crashed.text_content()
    refused = page.locator(f"li.failure[data-video={errored[1]}]")
    assert refused.count() == 1 and refused.locator(".error-text").text_content().strip()
    fits(page, "jobs", tmp_path)
    # its input was refused: no retry offered, and a retry posted anyway says why
    assert refused.locator("button").count() == 0 and "upload it again" in refused.text_content()
    page.evaluate(f"""() => {{ const f = document.createElement('form'); f.method = 'post';
        f.action = '/videos/{errored[1]}/retry';
        f.innerHTML = '<input name=csrf value=' + document.querySelector('[name=csrf]').value +
                      '><input name=next value=/jobs>';
        document.body.append(f); f.submit(); }}""")
    page.wait_for_selector("[role=alert]")
    assert page.locator("[role=alert]").text_content().strip().endswith("upload it again")
    page.click("text=Back")
    page.locator(f"li.failure[data-video={video_id}] button", has_text="Retry").click()
    page.wait_for_url(f"{server.base}/jobs")
    assert page.locator(f"li.failure[data-video={video_id}]").count() == 0
    page.goto(f"{server.base}/videos/{video_id}")
    page.wait_for_selector("#video", timeout=60_000)  # ready: the retry finished the job
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#delete-form button")  # asks first: dismissed, nothing happens
    assert page.url == f"{server.base}/videos/{video_id}"
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.click("#delete-form button")
    assert page.url == f"{server.base}/"
    jobs = json.loads(run_cli("jobs", "list", "--json", env=env).stdout)
    job = next(j for j in jobs if j["subject"] == video_id)
    assert job["attempts"] >= 2
    with server.client(token) as c:
        assert c.get(f"/api/videos/{video_id}").status_code == 404


def test_a_story_folder_becomes_a_stream_with_voice_and_sync_readings(server, context, tmp_path):
    folder = tmp_path / "my-story"
    (folder / "faces").mkdir(parents=True)
    (folder / "scenes").mkdir()
    (folder / "story.yaml").write_text(STORY)
    shutil.copy(media("faces/astronaut_eileen_collins.png"), folder / "faces" / "keeper.png")
    (folder / "scenes" / "01.txt").write_text("[S1] The light is on.\n")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # what a Mac leaves: skipped
    token = server.token("upload", "writer")
    page = context.new_page()
    sign_in(page, server.base, token, "/upload")
    page.evaluate("""() => {  // a file dropped on the drop zone joins the queue
        const data = new DataTransfer();
        data.items.add(new File(["x"], "dropped.mp4", {type: "video/mp4"}));
        const zone = document.getElementById('drop');
        for (const type of ['dragenter', 'dragover', 'drop'])
            zone.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true,
                                                    cancelable: true}));
    }""")
    assert page.text_content("#drop label") == "1 chosen: dropped.mp4"
    page.set_input_files("#folder", str(folder))
    page.click("#story-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/videos/v[0-9a-f]+$"), timeout=30_000)
    assert page.text_content("h1") == "Folder Story"
    page.wait_for_selector("#video", timeout=120_000)
    names = page.eval_on_selector_all("#steps li", "l => l.map(e => e.dataset.step)")
    assert {"voice-turn", "talk-shot", "assemble", "publish-stream"} <= set(names), names
    page.click("text=Report")
    voice = page.locator("#voice-table tbody tr").first.text_content()
    assert "espeak" in voice and "LUFS" in voice
    sync = page.locator("#sync-table tbody tr").first.text_content()
    assert " ms" in sync and "frames" in sync
    fits(page, "story-report", tmp_path)


def test_a_form_on_another_site_cannot_sign_out_or_delete(server, context, errored, tmp_path):
    token, video_id = errored
    other = OtherSite(f"""<!doctype html><body>
        <form id="out" method="post" action="{server.base}/signout">
          <input name="csrf" value="{"0" * 32}"></form>
        <form id="del" method="post" action="{server.base}/videos/{video_id}/delete">
          <input name="csrf" value="{"0" * 32}"><input name="confirmed" value="yes"></form>
        </body>""")
    try:
        page = context.new_page()
        page.goto(f"{server.base}/signin")
        fits(page, "signin", tmp_path)
        sign_in(page, server.base, token)
        for form in ("out", "del"):
            page.goto(other.base + "/")
            with page.expect_navigation():
                page.evaluate(f"document.getElementById('{form}').submit()")
            assert page.url.startswith(server.base)
            assert "Refused" in page.text_content("h1"), page.content()[:500]
            fits(page, "refused", tmp_path)
        page.goto(f"{server.base}/videos/{video_id}")  # still signed in, the video still there
        assert page.url == f"{server.base}/videos/{video_id}"
        assert page.text_content("h1") == XSS
        fits(page, "errored", tmp_path)
    finally:
        other.close()


def test_an_upload_left_behind_resumes_on_the_next_visit(server, context, tmp_path):
    """The connection drops and stays down, the page is closed; picking the same file again
    later resumes the same upload from the server's offset (tus-js-client's fingerprint)."""
    token = server.token("upload", "commuter")
    src = media("video/tears_of_steel_360p_10s.mp4")
    proxy = CuttingProxy(server.port, cut_after=200_000)
    proxy.block = True
    created: list[str] = []
    context.on("request", lambda r: created.append(r.url) if r.method == "POST" and
               r.url.endswith("/api/uploads") else None)  # fmt: skip
    try:
        page = context.new_page()
        sign_in(page, proxy.base, token, "/upload")
        page.select_option("#preset", "fast")
        page.uncheck("#quality")
        page.set_input_files("#files", str(src))
        page.click("#start")
        page.wait_for_selector("#queue li[data-state=retrying]", timeout=30_000)
        deadline = time.monotonic() + 30
        while proxy.blocked < 1:  # its retry did not get through either
            assert time.monotonic() < deadline
            time.sleep(0.05)
        page.close()
        proxy.block = False
        page = context.new_page()
        page.goto(proxy.base + "/upload")
        page.select_option("#preset", "fast")
        page.uncheck("#quality")
        other = media(CLIP)
        page.set_input_files("#files", [str(src), str(other)])  # several at once
        page.click("#start")
        rows = page.locator("#queue li")
        for n in range(2):
            rows.nth(n).locator("a.video-link").wait_for(timeout=60_000)
        assert page.eval_on_selector_all("#queue li", "l => l.map(e => e.dataset.state)") == [
            "published", "published"]  # fmt: skip
        assert rows.nth(0).get_attribute("data-resumed") == "true"
        assert rows.nth(1).get_attribute("data-resumed") is None
        assert len(created) == 2, created  # the first upload resumed, not made again
        resumed = [o for o in proxy.patches[1:] if o > 0]
        assert proxy.patches[0] == 0 and resumed and max(resumed) < src.stat().st_size
        titles = {v["title"] for v in httpx.get(f"{server.base}/api/videos", headers={
            "Authorization": f"Bearer {token}"}).json()["data"]}  # fmt: skip
        assert titles == {src.stem, other.stem}
        fits(page, "upload-resumed", tmp_path)
    finally:
        proxy.close()
