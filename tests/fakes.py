"""Local HTTP servers that implement hosted APIs' documented protocols, for tests."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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
