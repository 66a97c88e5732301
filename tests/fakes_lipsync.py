"""Local HTTP servers for the hosted lip-sync APIs added after sync.so, fal, Replicate and
D-ID (Tavus, HeyGen, Synthesia, Vozo), each implementing its documented protocol.

Every fake checks the key header, answers the statuses queued in ``failures`` first (a 429
carries ``Retry-After: RETRY_AFTER``), and keeps ``self.final`` ("done", "error", "never")
as :class:`fakes.FakeJobApi` does. Services that download their inputs (Tavus, Vozo) fetch
the URLs they are given, as the real ones do, and keep what they got in ``fetched``.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import httpx
from fakes import FakeJobApi

RETRY_AFTER = "0.3"  # seconds a 429 asks the client to wait
JPEG, PNG = b"\xff\xd8\xff", b"\x89PNG"


def is_mp3(data: bytes) -> bool:
    return data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0)


class FakeLipsyncApi(FakeJobApi):
    """FakeJobApi with Retry-After on 429 and input fetching by URL."""

    def __init__(self, video: bytes, failures=None, final: str = "done") -> None:
        super().__init__(video, failures, final)
        self.fetched: dict[str, bytes] = {}

    def handle(self, h, method, body):
        self.requests.append((method, h.path, body))
        if self.serve_file(h) or not self.authorised(h):
            return None
        failure = self.take_failure()
        if failure:
            extra = {"Retry-After": RETRY_AFTER} if failure == 429 else {}
            return self.send(h, failure, self.busy, headers=extra)
        return self.route(h, method, body)

    def fetch(self, name: str, url: str | None) -> bytes | None:
        """Download an input the way the service would (any public URL)."""
        if not url:
            return None
        answer = httpx.get(url, timeout=10)
        if answer.status_code != 200:
            return None
        self.fetched[name] = answer.content
        return answer.content


class FakeTavus(FakeLipsyncApi):
    """Tavus: POST /v2/lipsync (video + audio URLs), GET /v2/lipsync/{lipsync_id}."""

    key_header = "x-api-key"
    key_value = "test-tavus-key"
    busy: ClassVar[dict] = {"message": "Too many requests"}

    def route(self, h, method, body):
        if method == "POST" and h.path == "/v2/lipsync":
            video = self.fetch("video", body.get("original_video_url"))
            audio = self.fetch("audio", body.get("source_audio_url"))
            if not video or not audio:
                return self.send(
                    h,
                    400,
                    {"message": "original_video_url and source_audio_url must be downloadable"},
                )
            return self.send(
                h,
                200,
                {
                    "lipsync_id": "ls-1",
                    "status": "started",
                    "lipsync_name": body.get("lipsync_name"),
                    "request_id": "ls-1",
                },
            )
        if method == "GET" and h.path == "/v2/lipsync/ls-1":
            state = self.state()
            if state == "running":
                return self.send(h, 200, {"lipsync_id": "ls-1", "status": "processing"})
            if state == "error":
                return self.send(
                    h,
                    200,
                    {
                        "lipsync_id": "ls-1",
                        "status": "error",
                        "error_message": "no face found in the video",
                    },
                )
            return self.send(
                h,
                200,
                {
                    "lipsync_id": "ls-1",
                    "status": "completed",
                    "video_url": f"{self.base}/files/result.mp4",
                },
            )
        return self.send(h, 404, {"message": "not found"})


class FakeHeyGen(FakeLipsyncApi):
    """HeyGen: upload talking photo and audio asset (raw bodies), POST /v2/video/generate,
    GET /v1/video_status.get?video_id=..."""

    key_header = "X-Api-Key"
    key_value = "test-heygen-key"
    busy: ClassVar[dict] = {"code": 429, "message": "rate limit exceeded"}

    def __init__(self, video: bytes, failures=None, final: str = "done") -> None:
        super().__init__(video, failures, final)
        self.photos: dict[str, bytes] = {}
        self.assets: dict[str, bytes] = {}

    def route(self, h, method, body):
        path = urlparse(h.path).path
        raw, kind = body.get("_raw", b""), body.get("_type", "")
        if method == "POST" and path == "/v1/talking_photo":
            magic = {"image/jpeg": JPEG, "image/png": PNG}.get(kind)
            if not magic or not raw.startswith(magic):
                return self.send(h, 400, {"code": 400543, "message": "Content type not match"})
            self.photos["tp-1"] = raw
            return self.send(
                h,
                200,
                {
                    "code": 100,
                    "msg": None,
                    "message": None,
                    "data": {
                        "talking_photo_id": "tp-1",
                        "talking_photo_url": f"{self.base}/files/tp-1.jpg",
                    },
                },
            )
        if method == "POST" and path == "/v1/asset":
            if kind != "audio/mpeg" or not is_mp3(raw):
                return self.send(h, 400, {"code": 400543, "message": "Content type not match"})
            self.assets["asset-1"] = raw
            return self.send(
                h,
                200,
                {
                    "code": 100,
                    "data": {
                        "id": "asset-1",
                        "name": "asset-1",
                        "file_type": "audio",
                        "url": f"{self.base}/files/asset-1.mp3",
                    },
                },
            )
        if method == "POST" and path == "/v2/video/generate":
            inputs = body.get("video_inputs") or [{}]
            character, voice = inputs[0].get("character", {}), inputs[0].get("voice", {})
            if (
                character.get("type") != "talking_photo"
                or character.get("talking_photo_id") not in self.photos
                or voice.get("type") != "audio"
                or voice.get("audio_asset_id") not in self.assets
            ):
                return self.send(
                    h,
                    400,
                    {
                        "error": {"code": "invalid_parameter", "message": "bad video_inputs"},
                        "data": None,
                    },
                )
            return self.send(h, 200, {"error": None, "data": {"video_id": "vid-1"}})
        if method == "GET" and path == "/v1/video_status.get":
            if parse_qs(urlparse(h.path).query).get("video_id") != ["vid-1"]:
                return self.send(h, 404, {"code": 404, "message": "video not found"})
            state = self.state()
            if state == "running":
                return self.send(
                    h, 200, {"code": 100, "data": {"id": "vid-1", "status": "processing"}}
                )
            if state == "error":
                return self.send(
                    h,
                    200,
                    {
                        "code": 100,
                        "data": {
                            "id": "vid-1",
                            "status": "failed",
                            "video_url": None,
                            "error": {
                                "code": "40119",
                                "message": "face not detected",
                                "detail": "the talking photo has no usable face",
                            },
                        },
                    },
                )
            return self.send(
                h,
                200,
                {
                    "code": 100,
                    "data": {
                        "id": "vid-1",
                        "status": "completed",
                        "duration": 1.9,
                        "video_url": f"{self.base}/files/result.mp4",
                    },
                },
            )
        return self.send(h, 404, {"code": 404, "message": "not found"})


class FakeSynthesia(FakeLipsyncApi):
    """Synthesia: POST /v2/scriptAudio (Upload API), POST /v2/videos, GET /v2/videos/{id}."""

    key_header = "Authorization"
    key_value = "test-synthesia-key"
    busy: ClassVar[dict] = {"context": "Too many requests"}

    def __init__(self, video: bytes, failures=None, final: str = "done") -> None:
        super().__init__(video, failures, final)
        self.audio_ids: set[str] = set()

    def route(self, h, method, body):
        if method == "POST" and h.path == "/v2/scriptAudio":
            if body.get("_type") != "audio/mpeg" or not is_mp3(body.get("_raw", b"")):
                return self.send(h, 400, {"context": "only audio/mpeg script audio"})
            self.audio_ids.add("audio-1")
            return self.send(h, 201, {"id": "audio-1"})
        if method == "POST" and h.path == "/v2/videos":
            clip = (body.get("input") or [{}])[0]
            if (
                not clip.get("avatar")
                or clip.get("scriptAudio") not in self.audio_ids
                or not clip.get("scriptLanguage")
                or not clip.get("background")
            ):
                return self.send(h, 400, {"context": "invalid input"})
            return self.send(h, 201, {"id": "sv-1", "status": "in_progress"})
        if method == "GET" and h.path == "/v2/videos/sv-1":
            state = self.state()
            if state == "running":
                return self.send(h, 200, {"id": "sv-1", "status": "in_progress"})
            if state == "error":
                return self.send(h, 200, {"id": "sv-1", "status": "rejected"})
            return self.send(
                h,
                200,
                {
                    "id": "sv-1",
                    "status": "complete",
                    "duration": "0:00:01.900000",
                    "download": f"{self.base}/files/result.mp4",
                },
            )
        return self.send(h, 404, {"context": "not found"})


class FakeVozo(FakeLipsyncApi):
    """Vozo: POST /v1/video_generation (reference + audio URLs), GET its task."""

    key_header = "Authorization"
    key_value = "Bearer test-vozo-key"
    busy: ClassVar[dict] = {"code": "429", "message": "too many requests"}

    def route(self, h, method, body):
        if method == "POST" and h.path == "/v1/video_generation":
            reference = self.fetch("reference", body.get("reference_file_url"))
            audio = self.fetch("audio", body.get("audio_url"))
            kind = body.get("reference_file_type")
            image = reference is not None and reference[:3] in (JPEG, PNG[:3])
            if (
                not reference
                or not audio
                or body.get("model") not in ("standard_v1", "precision_v1")
                or kind not in ("image", "video")
                or image != (kind == "image")
            ):
                return self.send(h, 400, {"code": "400", "message": "invalid request"})
            return self.send(h, 200, {"task_id": "task-1"})
        if method == "GET" and h.path == "/v1/video_generation/task-1":
            state = self.state()
            if state == "running":
                return self.send(h, 200, {"status": "processing"})
            if state == "error":
                return self.send(h, 200, {"status": "failed", "message": "no speaking face found"})
            return self.send(
                h, 200, {"status": "done", "video_url": f"{self.base}/files/result.mp4"}
            )
        return self.send(h, 404, {"code": "404", "message": "not found"})


class FakeLipDub(FakeLipsyncApi):
    """LipDub 2 direct renders: POST /v1/renders (video + audio URLs) -> tracking id;
    GET /v1/renders/track/{id} -> dispatched with a generate_id; GET its status, then its
    download link."""

    key_header = "X-Api-Key"
    key_value = "test-lipdub-key"
    busy: ClassVar[dict] = {"message": "Too Many Requests"}

    def route(self, h, method, body):
        if method == "POST" and h.path == "/v1/renders":
            video = self.fetch("video", body.get("video_url"))
            audio = self.fetch("audio", body.get("audio_url"))
            if not video or not audio or not body.get("output_filename"):
                return self.send(
                    h, 400, {"message": "video_url, audio_url and output_filename are required"}
                )
            return self.send(h, 202, {"data": {"tracking_id": "trk-1"}})
        if method == "GET" and h.path == "/v1/renders/track/trk-1":
            state = self.state()
            if state == "running":
                return self.send(h, 200, {"data": {"tracking_id": "trk-1", "status": "ingesting"}})
            if state == "error":
                return self.send(
                    h,
                    200,
                    {
                        "data": {
                            "tracking_id": "trk-1",
                            "status": "failed",
                            "generate_id": None,
                            "failure_reason": "no speaking face in the source video",
                        }
                    },
                )
            return self.send(
                h,
                200,
                {"data": {"tracking_id": "trk-1", "status": "dispatched", "generate_id": 42}},
            )
        if method == "GET" and h.path == "/v1/renders/42/status":
            return self.send(h, 200, {"data": {"generate_id": 42, "status": "finished"}})
        if method == "GET" and h.path == "/v1/renders/42/download":
            return self.send(h, 200, {"data": {"download_url": f"{self.base}/files/result.mp4"}})
        return self.send(h, 404, {"message": "Not Found"})
