"""The service over loopback: `reelforge web` started for real, driven with httpx and tuspy."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import ClassVar

import av
import httpx
import pytest
from conftest import CLI, ROOT, free_port, media, run_cli
from tusclient import client as tus

from reelforge.media import ffmpeg
from reelforge.web.webhooks import HEADER, verify

WEBHOOK_SECRET = "test-webhook-secret"
QUICK = {"preset": "fast", "quality": False, "thumbnails": False, "fallback": False}  # no extras


class Web:
    """``reelforge web --data DIR`` on a free port; ``token(scope)`` makes API tokens."""

    def __init__(self, data: Path, env: dict | None = None, server: str = "granian") -> None:
        self.data, self.server = data, server
        self.env = {**os.environ, "REELFORGE_WEBHOOK_SECRET": WEBHOOK_SECRET, **(env or {})}
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Web:
        self.proc = subprocess.Popen(
            [*CLI, "web", "--data", str(self.data), "--port", str(self.port),
             "--server", self.server],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=self.env,
            start_new_session=True,
        )  # fmt: skip
        line = self.proc.stdout.readline()  # printed once it listens
        assert line.startswith("ReelForge at "), (line, self.proc.stderr.read())
        assert f":{self.port}/" in line
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def token(self, scope: str = "upload", name: str = "test", *extra: str) -> str:
        result = run_cli("tokens", "create", name, "--data", self.data, "--scope", scope,
                         "--json", *extra, env=self.env)  # fmt: skip
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["token"]

    def client(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    server = Web(tmp_path_factory.mktemp("web") / "data").start()
    yield server
    server.stop()


def tus_upload(web: Web, token: str, path: Path, *, halves: bool = False) -> str:
    """Upload ``path`` with tuspy; ``halves``: the first half on one client, the rest on
    another that resumes from the server's offset."""
    headers = {"Authorization": f"Bearer {token}"}
    meta = {"filename": path.name, "filetype": "video/mp4"}
    size = path.stat().st_size
    first = tus.TusClient(f"{web.base}/api/uploads", headers=headers)
    uploader = first.uploader(str(path), chunk_size=(size + 1) // 2 if halves else 1 << 22,
                              metadata=meta)  # fmt: skip
    if not halves:
        uploader.upload()
        return uploader.url
    uploader.upload_chunk()  # the first half; then this client is dropped
    url = uploader.url
    head = httpx.head(url, headers={**headers, "Tus-Resumable": "1.0.0"})
    assert int(head.headers["Upload-Offset"]) == (size + 1) // 2
    second = tus.TusClient(f"{web.base}/api/uploads", headers=headers)
    resumed = second.uploader(str(path), url=url, chunk_size=1 << 22, metadata=meta)
    assert resumed.get_offset() == (size + 1) // 2  # starts where the first one stopped
    resumed.upload()
    return url


def follow(web: Web, token: str, video_id: str, timeout: float = 180) -> list[dict]:
    """The video's Server-Sent Events until the stream ends."""
    events = []
    with web.client(token) as c, c.stream("GET", f"/api/videos/{video_id}/events",
                                          timeout=timeout) as response:  # fmt: skip
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    return events


def frames(url_or_path: str) -> int:
    command = [ffmpeg.ffmpeg_exe(), "-hide_banner", "-i", url_or_path, "-map", "0:v:0",
               "-f", "null", "-"]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return int(out.stderr.rsplit("frame=", 1)[1].split()[0])


def source_frames(path: Path) -> int:
    with av.open(str(path)) as f:
        return sum(1 for _ in f.decode(video=0))


def test_an_upload_in_two_halves_becomes_a_stream_that_plays(web):
    src = media("video/bbb_720p_2s_h264.mp4")
    token = web.token("upload", "editor")
    url = tus_upload(web, token, src, halves=True)
    with web.client(token) as c:
        created = c.post(
            "/api/videos",
            json={"upload": url, "title": "Bunny", "publish": {"preset": "fast", "quality": False}},
        )
        assert created.status_code == 201, created.text
        video = created.json()
        assert video["status"] == "waiting" and video["title"] == "Bunny"
        events = follow(web, token, video["id"])
        statuses = [e["status"] for e in events]
        assert statuses[-1] == "ready", events[-1]
        assert set(statuses) <= {"waiting", "processing", "ready"}
        progress = [e["progress"] for e in events]
        assert progress == sorted(progress) and progress[-1] == 1.0
        assert any(0 < p < 1 for p in progress), progress  # real progress, not a jump
        ready = c.get(f"/api/videos/{video['id']}").json()
        playback = ready["playback"]
        assert "/p/" in playback["hls"]  # private by default: a signed URL for this caller
        assert frames(playback["hls"]) == source_frames(src)
        assert c.get(playback["dash"]).status_code == 200
        assert httpx.get(playback["page"]).status_code == 200
        unsigned = playback["hls"].split("/p/")[0] + "/media/private/" + video["id"]
        assert httpx.get(unsigned + "/master.m3u8").status_code == 403
        listed = c.get("/api/videos").json()["data"]
        assert video["id"] in [v["id"] for v in listed]
        report = c.get(ready["report"]).json()["publish"]
        assert report["state"] in ("playable", "complete")
        assert str(web.data) not in json.dumps(report)  # no server paths in what clients read
        assert report["input"] == "source.mp4" and report["output"] == "."
        # the upload became the video's source: nothing left in the uploads folder
        assert not any(p.is_file() for p in (web.data / "uploads").rglob("*")
                       if not p.name.startswith("."))  # fmt: skip
        assert c.delete(f"/api/videos/{video['id']}").status_code == 204
        assert c.get(f"/api/videos/{video['id']}").status_code == 404
        assert httpx.get(playback["hls"]).status_code in (403, 404)  # gone, and says nothing
        assert not (web.data / "library" / "private" / video["id"]).exists()
        assert not (web.data / "sources" / video["id"]).exists()


def test_the_api_describes_itself(web):
    """The OpenAPI document is public and lists every resource the README documents."""
    r = httpx.get(f"{web.base}/api/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    for path in ("/api/videos", "/api/videos/{video_id}", "/api/videos/{video_id}/events",
                 "/api/videos/{video_id}/report", "/api/videos/{video_id}/retry",
                 "/api/stories", "/api/jobs"):  # fmt: skip
        assert path in doc["paths"], (path, sorted(doc["paths"]))


def test_tokens_and_scopes(web):
    owner, other = web.token("upload", "owner"), web.token("upload", "other")
    reader, admin = web.token("read", "reader"), web.token("admin", "root")
    with web.client(None) as anon:
        r = anon.get("/api/videos")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"]["code"] == "unauthorized"
        assert (
            anon.post(
                "/api/uploads", headers={"Tus-Resumable": "1.0.0", "Upload-Length": "10"}
            ).status_code
            == 401
        )
    for bad in ("rf_nope", "Basic abc", "Bearer", owner[:-2]):
        header = bad if " " in bad or bad == "Bearer" else f"Bearer {bad}"
        assert httpx.get(f"{web.base}/api/me", headers={"Authorization": header}).status_code \
            == 401  # fmt: skip
    with web.client(reader) as c:
        assert c.get("/api/me").json()["scope"] == "read"
        r = c.post("/api/videos", json={"upload": "x"})
        assert r.status_code == 403 and "scope" in r.json()["error"]["message"]
        assert (
            c.post(
                "/api/uploads", headers={"Tus-Resumable": "1.0.0", "Upload-Length": "10"}
            ).status_code
            == 403
        )
        assert c.get("/api/jobs").status_code == 403
    src = media("video/bbb_720p_2s_h264.mp4")
    url = tus_upload(web, owner, src)
    with web.client(other) as c:  # another owner's upload is unknown to this one
        r = c.post("/api/videos", json={"upload": url})
        assert r.status_code == 422 and "upload" in r.json()["error"]["message"]
        assert r.json()["error"]["field"] == "upload"
    with web.client(owner) as c:
        r = c.post("/api/videos", json={"upload": url, "publish": {"codecs": ["h264"], **QUICK}})
        assert r.status_code == 201, r.text
        video_id = r.json()["id"]
        r = c.post("/api/videos", json={"upload": url, "publish": {"subtitles": "/etc/passwd"}})
        assert r.status_code == 422 and "subtitles" in r.json()["error"]["message"]
        assert r.json()["error"]["field"].startswith("publish.subtitles"), r.text
        r = c.post("/api/videos", json={"upload": url, "publish": {"codecs": ["mpeg2"]}})
        assert r.status_code == 422 and r.json()["error"]["field"].startswith("publish.codecs")
    with web.client(other) as c:
        assert c.get(f"/api/videos/{video_id}").status_code == 404
        assert c.delete(f"/api/videos/{video_id}").status_code == 404
        assert video_id not in [v["id"] for v in c.get("/api/videos").json()["data"]]
    with web.client(admin) as c:
        assert c.get(f"/api/videos/{video_id}").status_code == 200
        assert c.get("/api/jobs").status_code == 200
    assert follow(web, owner, video_id)[-1]["status"] == "ready"
    tokens = json.loads(run_cli("tokens", "list", "--data", web.data, "--json").stdout)
    assert owner not in json.dumps(tokens)  # stored hashed, never shown again
    victim = next(t["id"] for t in tokens if t["name"] == "other")
    assert run_cli("tokens", "revoke", victim, "--data", web.data).returncode == 0
    with web.client(other) as c:
        assert c.get("/api/me").status_code == 401


def test_a_text_file_uploaded_as_a_video_errors_and_leaves_nothing(web, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    token = web.token("upload", "typo")
    url = tus_upload(web, token, text)
    with web.client(token) as c:
        r = c.post("/api/videos", json={"upload": url})
        assert r.status_code == 201
        video_id = r.json()["id"]
        events = follow(web, token, video_id)
        last = events[-1]
        assert last["status"] == "errored"
        error = last["error"]
        assert error["code"] in ("input", "media") and "\n" not in error["message"]
        assert "Traceback" not in error["message"] and error["message"]
        assert c.get(f"/api/videos/{video_id}").json()["status"] == "errored"
        r = c.post(f"/api/videos/{video_id}/retry")
        assert r.status_code == 409
    assert not (web.data / "sources" / video_id).exists()
    assert not (web.data / "library" / "private" / video_id).exists()


def test_bad_requests_are_4xx_never_5xx(web):
    token = web.token("upload", "fuzz")
    bodies = [b"", b"{", b"[]", b'{"upload": 5}', b'{"upload": "../../etc/passwd"}',
              b'{"upload": "' + b"x" * 5000 + b'"}', b'{"upload": "a", "extra": 1}',
              b'{"upload": "a", "publish": {"codecs": ["mpeg2"]}}',
              b'{"upload": "a", "publish": {"segment_duration": 0}}',
              b'{"upload": "\\u0000"}']  # fmt: skip
    with web.client(token) as c:
        for body in bodies:
            r = c.post("/api/videos", content=body, headers={"content-type": "application/json"})
            assert 400 <= r.status_code < 500, (body, r.status_code, r.text)
            assert "error" in r.json()
        odd = ("/api/videos/..%2f..%2fetc", "/api/videos/" + "v" * 300, "/api/videos/%00",
               "/api/videos/x/events", "/api/videos/x/report")  # fmt: skip
        for path in odd:
            assert c.get(path).status_code == 404, path
        assert c.get("/api/videos?limit=abc").status_code == 422
        assert c.get("/api/videos?limit=-5").status_code == 200


STORY = """\
title: Two Lines
cast:
  S1: {face: faces/keeper.png, voice: {backend: espeak}}
scenes:
  - script: scenes/01.txt
publish: {preset: fast, quality: false, fallback: false}
"""


def _story_files(extra: dict | None = None) -> list:
    face = media("faces/astronaut_eileen_collins.png").read_bytes()
    files = [("files", ("faces/keeper.png", face, "image/png")),
             ("files", ("scenes/01.txt", b"[S1] The light is on.\n", "text/plain"))]  # fmt: skip
    for name, data in (extra or {}).items():
        files.append(("files", (name, data, "application/octet-stream")))
    return files


def test_a_story_is_made_into_a_stream(web):
    """The portrait comes as a tus upload the story names in ``uploads`` (large footage
    would), the script as a multipart file."""
    token = web.token("upload", "writer")
    face = tus_upload(web, token, media("faces/astronaut_eileen_collins.png"))
    script = [f for f in _story_files() if f[1][0] == "scenes/01.txt"]
    with web.client(token) as c:
        r = c.post("/api/stories", files=[("story", ("story.yaml", STORY.encode(), "text/yaml")),
                                          *script],
                   data={"uploads": json.dumps({"faces/keeper.png": face})})  # fmt: skip
        assert r.status_code == 201, r.text
        video = r.json()
        assert video["kind"] == "story" and video["title"] == "Two Lines"
        events = follow(web, token, video["id"], timeout=300)
        assert events[-1]["status"] == "ready", events[-1]
        steps = {e["step"] for e in events if e["step"]}
        assert {"voice-turn", "talk-shot"} <= steps or "publish-stream" in steps, steps
        report = c.get(f"/api/videos/{video['id']}/report").json()
        assert {s["step"] for s in report["make"]["steps"]} >= {
            "voice-turn",
            "talk-shot",
            "assemble",
            "publish-stream",
        }
        playback = c.get(f"/api/videos/{video['id']}").json()["playback"]
        assert frames(playback["hls"]) > 0


@pytest.mark.parametrize(("story", "files", "needle"), [
    (STORY.replace("S1: {face", "S3: {face"), None, "scenes/01.txt:1:1"),  # unknown speaker
    (STORY.replace("faces/keeper.png", "faces/missing.png"), None, "story.yaml:3:"),
    (STORY.replace("faces/keeper.png", "../../../../etc/hostname"), None, "story.yaml"),
    (STORY.replace("scenes/01.txt", "/etc/hostname"), None, "outside"),
    (STORY.replace("publish: {", "publish: {subtitles: {en: /etc/passwd}, "), None, "subtitles"),
    ("title: [unclosed\n", None, "story.yaml:"),
    (STORY, {"../escape.txt": b"x"}, "not a file name"),
    (STORY, {".hidden": b"x"}, "not a file name"),
])  # fmt: skip
def test_a_bad_story_is_a_4xx_naming_the_place(web, story, files, needle):
    token = web.token("upload", "careless")
    before = set((web.data / "sources").iterdir())
    with web.client(token) as c:
        r = c.post("/api/stories", files=[("story", ("story.yaml", story.encode(), "text/yaml")),
                                          *_story_files(files)])  # fmt: skip
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    message = r.json()["error"]["message"]
    assert needle in message, message
    assert r.json()["error"]["field"] == ("files" if files else "story"), r.text
    assert str(web.data) not in message  # the server's folders stay private
    assert set((web.data / "sources").iterdir()) == before  # nothing kept


class Receiver(http.server.BaseHTTPRequestHandler):
    """A webhook endpoint that fails its first delivery with a 500."""

    received: ClassVar[list[tuple[dict, bytes]]] = []
    answers: ClassVar[list[int]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        status = 500 if not Receiver.answers else 200
        Receiver.answers.append(status)
        Receiver.received.append((dict(self.headers), body))
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_webhooks_are_signed_and_retried(web):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
    token = web.token("upload", "hooked", "--webhook", hook)
    url = tus_upload(web, token, media("video/bbb_720p_2s_h264.mp4"))
    try:
        with web.client(token) as c:
            r = c.post("/api/videos", json={"upload": url, "publish": QUICK})
            video_id = r.json()["id"]
        deadline = time.monotonic() + 120
        while Receiver.answers.count(200) < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert Receiver.answers[:2] == [500, 200], Receiver.answers
        for headers, body in Receiver.received[:2]:
            signature = {k.lower(): v for k, v in headers.items()}[HEADER.lower()]
            assert verify(WEBHOOK_SECRET.encode(), body, signature)
            assert not verify(b"another secret", body, signature)
            assert not verify(WEBHOOK_SECRET.encode(), body + b" ", signature)
            event = json.loads(body)
            assert event["type"] == "video.ready" and event["data"]["id"] == video_id
        text = web.data.parent / "hooked-notes.mp4"  # a poison upload: video.errored
        text.write_text("this is not a video\n" * 50)
        with web.client(token) as c:
            bad_id = c.post("/api/videos", json={"upload": tus_upload(web, token, text)}
                            ).json()["id"]  # fmt: skip
        deadline = time.monotonic() + 60
        while len(Receiver.received) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        headers, body = Receiver.received[2]
        signature = {k.lower(): v for k, v in headers.items()}[HEADER.lower()]
        assert verify(WEBHOOK_SECRET.encode(), body, signature)
        event = json.loads(body)
        assert event["type"] == "video.errored" and event["data"]["id"] == bad_id
    finally:
        server.shutdown()


def test_a_restart_resumes_unfinished_videos(tmp_path):
    web = Web(tmp_path / "data").start()
    token = web.token("upload", "patient")
    url = tus_upload(web, token, media("video/tears_of_steel_360p_10s.mp4"))
    with web.client(token) as c:
        video_id = c.post(
            "/api/videos", json={"upload": url, "publish": {"preset": "fast", "quality": False}}
        ).json()["id"]
        deadline = time.monotonic() + 60
        while c.get(f"/api/videos/{video_id}").json()["status"] != "processing":
            assert time.monotonic() < deadline
            time.sleep(0.2)
    web.stop()  # SIGTERM while it encodes: the job is interrupted, not lost
    web.start()
    try:
        assert follow(web, token, video_id)[-1]["status"] == "ready"
        jobs = json.loads(run_cli("jobs", "list", "--json",
                                  env={**web.env, "REELFORGE_STATE": str(web.data / "state")}
                                  ).stdout)  # fmt: skip
        job = next(j for j in jobs if j["subject"] == video_id)
        assert job["status"] in ("done", "running") and job["attempts"] >= 2
    finally:
        web.stop()
