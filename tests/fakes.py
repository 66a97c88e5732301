"""Local HTTP servers that implement hosted APIs' documented protocols, for tests."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar


class FakeApi:
    """A loopback server; subclasses route requests. ``failures`` is a list of HTTP statuses
    answered (in order) to the first submissions before the real answer."""

    key_header = ""
    key_value = ""

    def __init__(self, audio: bytes, failures: list[int] | None = None) -> None:
        self.audio = audio
        self.failures = list(failures or [])
        self.requests: list[tuple[str, str, dict]] = []
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _body(self) -> dict:
                n = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(n) if n else b""
                if not raw:
                    return {}
                if "json" in (self.headers.get("content-type") or ""):
                    return json.loads(raw)
                return {"_raw": raw, "_type": self.headers.get("content-type", "")}

            def do_GET(self):
                api.handle(self, "GET", {})

            def do_POST(self):
                api.handle(self, "POST", self._body())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def send(
        self, h, status: int, body: bytes | dict, kind: str = "application/json", headers=None
    ):
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        h.send_response(status)
        h.send_header("Content-Type", kind)
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def authorised(self, h) -> bool:
        if h.headers.get(self.key_header) != self.key_value:
            self.send(h, 401, {"detail": "Unauthorized"})
            return False
        return True

    def take_failure(self) -> int | None:
        with self.lock:
            return self.failures.pop(0) if self.failures else None

    def handle(self, h, method: str, body: dict) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class FakeFal(FakeApi):
    """fal.ai queue: submit -> status (IN_QUEUE, then COMPLETED) -> response -> file."""

    key_header = "Authorization"
    key_value = "Key test-fal-key"

    def __init__(self, audio: bytes, failures=None) -> None:
        super().__init__(audio, failures)
        self.polls: dict[str, int] = {}

    def handle(self, h, method, body):
        path = h.path
        self.requests.append((method, path, body))
        if path.startswith("/files/"):
            return self.send(h, 200, self.audio, "audio/wav")
        if not self.authorised(h):
            return None
        if method == "POST":
            failure = self.take_failure()
            if failure:
                return self.send(h, failure, {"detail": "try later"})
            if "text" not in body:
                return self.send(h, 422, {"detail": "text is required"})
            rid = uuid.uuid4().hex
            app = "fal-ai/dia-tts"
            return self.send(h, 200, {
                "request_id": rid,
                "status_url": f"{self.base}/{app}/requests/{rid}/status",
                "response_url": f"{self.base}/{app}/requests/{rid}",
                "cancel_url": f"{self.base}/{app}/requests/{rid}/cancel",
            })  # fmt: skip
        parts = path.strip("/").split("/")
        rid = parts[parts.index("requests") + 1]
        if path.endswith("/status"):
            self.polls[rid] = self.polls.get(rid, 0) + 1
            status = "IN_QUEUE" if self.polls[rid] == 1 else "COMPLETED"
            return self.send(h, 200, {"status": status, "queue_position": 0})
        return self.send(h, 200, {"audio": {"url": f"{self.base}/files/{rid}.wav",
                                            "content_type": "audio/wav"}})  # fmt: skip


class FakeSegmind(FakeApi):
    """Segmind: POST /dia answers audio bytes, or JSON with base64 audio (``json_mode``)."""

    key_header = "x-api-key"
    key_value = "test-segmind-key"
    json_mode = False

    def handle(self, h, method, body):
        self.requests.append((method, h.path, body))
        if not self.authorised(h):
            return None
        failure = self.take_failure()
        if failure:
            return self.send(h, failure, {"error": "busy"})
        if h.path != "/dia" or "text" not in body:
            return self.send(h, 400, {"error": "bad request"})
        if self.json_mode:
            import base64

            return self.send(h, 200, {"audio": base64.b64encode(self.audio).decode()},
                             headers={"x-remaining-credits": "41.5"})  # fmt: skip
        return self.send(h, 200, self.audio, "audio/wav", {"x-remaining-credits": "42.0"})


class FakeDid(FakeApi):
    """D-ID: multipart uploads to /images and /audios, POST /talks, GET /talks/{id}, file."""

    key_header = "Authorization"
    key_value = "Basic test-did-key"

    def __init__(self, video: bytes, failures=None, final: str = "done") -> None:
        super().__init__(video, failures)
        self.final = final  # "done", "error", or "never" (stays started)
        self.polls = 0

    def handle(self, h, method, body):
        self.requests.append((method, h.path, body))
        if h.path.startswith("/files/"):
            return self.send(h, 200, self.audio, "video/mp4")
        if not self.authorised(h):
            return None
        failure = self.take_failure()
        if failure:
            return self.send(h, failure, {"kind": "Busy"})
        if method == "POST" and h.path in ("/images", "/audios"):
            field = h.path[1:-1]
            if not body.get("_type", "").startswith("multipart/form-data") or (
                f'name="{field}"'.encode() not in body.get("_raw", b"")
            ):
                return self.send(h, 400, {"kind": "BadRequestError"})
            return self.send(h, 201, {"id": uuid.uuid4().hex, "url": f"s3://fake/{field}"})
        if method == "POST" and h.path == "/talks":
            if body.get("script", {}).get("type") != "audio" or not body.get("source_url"):
                return self.send(h, 400, {"kind": "BadRequestError"})
            return self.send(h, 201, {"id": "tlk_test", "status": "created"})
        if method == "GET" and h.path == "/talks/tlk_test":
            self.polls += 1
            if self.polls < 2 or self.final == "never":
                return self.send(h, 200, {"id": "tlk_test", "status": "started"})
            if self.final == "error":
                failed = {"description": "face not detected"}
                return self.send(h, 200, {"id": "tlk_test", "status": "error", "error": failed})
            return self.send(h, 200, {"id": "tlk_test", "status": "done", "duration": 1.9,
                                      "result_url": f"{self.base}/files/result.mp4"})  # fmt: skip
        return self.send(h, 404, {"kind": "NotFound"})


class FakeJobApi(FakeApi):
    """Common ground for job APIs: ``final`` is "done", "error" or "never" (stays running);
    files PUT to ``/upload/...`` are kept in ``uploads``; ``/files/result.mp4`` serves the
    result video (``self.audio`` holds its bytes)."""

    def __init__(self, video: bytes, failures=None, final: str = "done") -> None:
        super().__init__(video, failures)
        self.final = final
        self.polls = 0
        self.uploads: dict[str, bytes] = {}
        api = self
        handler = self.server.RequestHandlerClass

        def do_PUT(h):  # noqa: N802 - the name http.server dispatches to
            n = int(h.headers.get("content-length") or 0)
            api.uploads[h.path] = h.rfile.read(n)
            api.requests.append(("PUT", h.path, {"_type": h.headers.get("content-type")}))
            api.send(h, 200, b"", "text/plain")

        handler.do_PUT = do_PUT

    def serve_file(self, h) -> bool:
        if h.path.startswith("/files/"):
            self.send(h, 200, self.audio, "video/mp4")
            return True
        return False

    busy: ClassVar[dict] = {"detail": "busy"}  # the body of a retried (429/5xx) answer

    def handle(self, h, method, body):
        """Record, serve result files, check the key, answer queued failures; then route."""
        self.requests.append((method, h.path, body))
        if self.serve_file(h) or not self.authorised(h):
            return None
        failure = self.take_failure()
        if failure:
            return self.send(h, failure, self.busy)
        return self.route(h, method, body)

    def route(self, h, method, body):  # pragma: no cover - overridden
        raise NotImplementedError

    def state(self) -> str:
        """running, done or error, as this job's poll count and ``final`` decide."""
        self.polls += 1
        if self.polls < 2 or self.final == "never":
            return "running"
        return self.final


class FakeSyncSo(FakeJobApi):
    """sync.so v2: assets (presign, PUT, register), POST /v2/generate, GET /v2/generate/{id}."""

    key_header = "x-api-key"
    key_value = "test-sync-key"

    busy: ClassVar[dict] = {"message": "rate limited"}

    def route(self, h, method, body):
        if method == "POST" and h.path == "/v2/assets/upload":
            if not {"fileName", "contentType", "size"} <= body.keys():
                return self.send(h, 400, {"message": "fileName, contentType, size required"})
            name = body["fileName"]
            return self.send(h, 201, {"uploadUrl": f"{self.base}/upload/{name}",
                                      "url": f"https://assets.example/{name}",
                                      "expiresIn": 600})  # fmt: skip
        if method == "POST" and h.path == "/v2/assets":
            name = body.get("url", "").rsplit("/", 1)[-1]
            if f"/upload/{name}" not in self.uploads:
                return self.send(h, 400, {"message": "nothing was uploaded there"})
            return self.send(h, 201, {"id": f"asset-{name}", "url": body["url"]})
        if method == "POST" and h.path == "/v2/generate":
            kinds = sorted(i.get("type") for i in body.get("input", []) if i.get("assetId"))
            if kinds != ["audio", "video"] or body.get("model") not in (
                "lipsync-2",
                "lipsync-2-pro",
            ):
                return self.send(h, 400, {"message": "bad input"})  # fmt: skip
            return self.send(h, 201, {"id": "gen-1", "status": "PENDING"})
        if method == "GET" and h.path == "/v2/generate/gen-1":
            state = self.state()
            if state == "running":
                return self.send(h, 200, {"id": "gen-1", "status": "PROCESSING"})
            if state == "error":
                return self.send(h, 200, {"id": "gen-1", "status": "FAILED",
                                          "error": "no face detected"})  # fmt: skip
            return self.send(h, 200, {"id": "gen-1", "status": "COMPLETED", "outputDuration": 3,
                                      "outputUrl": f"{self.base}/files/result.mp4"})  # fmt: skip
        return self.send(h, 404, {"message": "not found"})


class FakeFalLipsync(FakeJobApi):
    """fal.ai storage (initiate + PUT) and queue (submit, status, response) for lip-sync."""

    key_header = "Authorization"
    key_value = "Key test-fal-key"

    def route(self, h, method, body):
        path = h.path.split("?")[0]
        if method == "POST" and path == "/storage/upload/initiate":
            name = body.get("file_name")
            return self.send(h, 200, {"upload_url": f"{self.base}/upload/{name}",
                                      "file_url": f"https://fal.media/{name}"})  # fmt: skip
        if method == "POST" and path.startswith("/fal-ai/"):
            uploaded = {f"https://fal.media/{k.rsplit('/', 1)[-1]}" for k in self.uploads}
            if not {body.get("video_url"), body.get("audio_url")} <= uploaded:
                return self.send(h, 422, {"detail": "video_url and audio_url required"})
            request = f"{self.base}/{path.strip('/')}/requests/req-1"
            return self.send(h, 200, {"request_id": "req-1", "status_url": f"{request}/status",
                                      "response_url": request})  # fmt: skip
        if path.endswith("/status"):
            state = self.state()
            status = {"running": "IN_PROGRESS", "error": "FAILED", "done": "COMPLETED"}[state]
            return self.send(h, 200, {"status": status})
        if "/requests/req-1" in path:
            return self.send(h, 200, {"video": {"url": f"{self.base}/files/result.mp4"}})
        return self.send(h, 404, {"detail": "not found"})


class FakeReplicate(FakeJobApi):
    """Replicate: POST /v1/files (multipart), POST /v1/predictions, GET the prediction."""

    key_header = "Authorization"
    key_value = "Bearer test-replicate-token"

    busy: ClassVar[dict] = {"detail": "throttled"}

    def route(self, h, method, body):
        if method == "POST" and h.path == "/v1/files":
            if b'name="content"' not in body.get("_raw", b""):
                return self.send(h, 400, {"detail": "content is required"})
            fid = uuid.uuid4().hex[:8]
            return self.send(h, 201, {"id": fid,
                                      "urls": {"get": f"{self.base}/v1/files/{fid}"}})  # fmt: skip
        if method == "POST" and h.path == "/v1/predictions":
            given = body.get("input", {})
            if not body.get("version") or not {"image", "audio"} <= given.keys():
                return self.send(h, 422, {"detail": "version, input.image, input.audio"})
            return self.send(h, 201, {"id": "pred-1", "status": "starting", "urls": {
                "get": f"{self.base}/v1/predictions/pred-1"}})  # fmt: skip
        if method == "GET" and h.path == "/v1/predictions/pred-1":
            state = self.state()
            if state == "running":
                return self.send(h, 200, {"id": "pred-1", "status": "processing"})
            if state == "error":
                return self.send(h, 200, {"id": "pred-1", "status": "failed",
                                          "error": "CUDA out of memory"})  # fmt: skip
            return self.send(h, 200, {"id": "pred-1", "status": "succeeded",
                                      "output": f"{self.base}/files/result.mp4",
                                      "metrics": {"predict_time": 12.5}})  # fmt: skip
        return self.send(h, 404, {"detail": "not found"})
