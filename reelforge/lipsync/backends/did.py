"""``did``: D-ID's talks API (a portrait and an audio track in, a talking video out).

Protocol: upload the image (``POST /images``, multipart field ``image``) and the audio
(``POST /audios``, field ``audio``), each answering a URL; ``POST /talks`` with
``source_url`` and an audio ``script``; poll ``GET /talks/{id}`` until ``done`` (or
``error``/``rejected``); download ``result_url``. The key is the given
:class:`~reelforge.config.Services`' ``DID_API_KEY``, sent as ``Authorization: Basic <key>``;
its ``DID_API_URL`` (or ``base_url``) points elsewhere (a proxy, a test).
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from reelforge.config import Services
from reelforge.errors import BackendError
from reelforge.http.client import ApiClient

API_URL = "https://api.d-id.com"
FINAL = {"done", "error", "rejected"}


class DidBackend:
    name = "did"
    accepts = ("image",)

    def __init__(
        self,
        services: Services,
        base_url: str | None = None,
        poll_interval: float = 2.0,
        timeout: float = 900.0,
        model: str | None = None,  # D-ID's talks have no model choice
    ) -> None:
        self.client = ApiClient("D-ID", services, key_env="DID_API_KEY",
                                auth_header="Authorization", key_prefix="Basic ")  # fmt: skip
        self.base = (base_url or services.url("DID_API_URL", API_URL)).rstrip("/")
        self.poll_interval = poll_interval
        self.timeout = timeout

    def _upload(self, kind: str, path: Path) -> str:
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        files = {kind: (path.name, path.read_bytes(), mime)}
        answer = self.client.request("POST", f"{self.base}/{kind}s", files=files).json()
        if not answer.get("url"):
            raise BackendError(f"D-ID: the {kind} upload returned no URL")
        return answer["url"]

    def render(self, face: Path, audio: Path, sync_mode: str = "cut") -> tuple[bytes, dict]:
        """The talking video's bytes, and what D-ID said about the job (a talk always lasts
        as long as its audio, so ``sync_mode`` has nothing to choose)."""
        source_url = self._upload("image", face)
        audio_url = self._upload("audio", audio)
        created = self.client.request(
            "POST",
            f"{self.base}/talks",
            json={
                "source_url": source_url,
                "script": {"type": "audio", "audio_url": audio_url},
                "config": {"result_format": "mp4"},
            },
        ).json()
        talk_id = created.get("id")
        if not talk_id:
            raise BackendError("D-ID: creating the talk returned no id")
        status = self.client.poll(
            f"{self.base}/talks/{talk_id}",
            done=lambda d: d.get("status") in FINAL,
            interval=self.poll_interval,
            timeout=self.timeout,
        )
        if status.get("status") != "done":
            why = (status.get("error") or {}).get("description") or status.get("status")
            raise BackendError(f"D-ID: talk {talk_id} ended as {status.get('status')}: {why}")
        if not status.get("result_url"):
            raise BackendError(f"D-ID: talk {talk_id} is done but has no result_url")
        video = self.client.request("GET", status["result_url"], auth=False).content
        return video, {"talk_id": talk_id, "duration": status.get("duration")}
