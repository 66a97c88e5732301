"""``vozo``: Vozo's lip-sync video generation (a portrait or a video, and an audio track).

Protocol (vozo.ai/docs, "Create a lipsync video job" and "Query job status"):
``POST /v1/video_generation`` with ``reference_file_url``, ``reference_file_type``
(``image`` or ``video``), ``audio_url`` and ``model`` (``standard_v1``, or ``precision_v1``:
slower, better) answers a ``task_id``; ``GET /v1/video_generation/{task_id}`` answers
``status`` (``pending``, ``processing``, ``done``, ``failed``) and, when done, a
``video_url`` to download. A failed job is reported with the service's ``message`` (or
``err_message``) when it gives one. The key is the :class:`~reelforge.config.Services`'
``VOZO_API_KEY``, sent as ``Authorization: Bearer <key>``; ``VOZO_API_URL`` points elsewhere.

Vozo takes .mp4/.mov/.webm/.avi/.wmv video and .wav/.mp3/.m4a audio (other containers are
converted first). It downloads its inputs, so they go through
:class:`~reelforge.lipsync.backends.staging.Staging` (``REELFORGE_STAGING``): presigned S3
GET URLs with a short expiry, deleted when the job ends.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from reelforge.config import Services
from reelforge.errors import BackendError, InputError
from reelforge.http.client import ApiClient
from reelforge.lipsync.backends.prep import audio_as, reason, video_as
from reelforge.lipsync.backends.staging import Staging

API_URL = "https://api.vozo.ai"
MODELS = ("standard_v1", "precision_v1")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".avi", ".wmv")
AUDIO_SUFFIXES = (".wav", ".mp3", ".m4a")


class VozoBackend:
    name = "vozo"
    accepts = ("image", "video")

    def __init__(
        self,
        services: Services,
        model: str | None = None,
        poll_interval: float = 5.0,
        timeout: float = 900.0,
        s3=None,
    ) -> None:
        self.model = model or "standard_v1"
        if self.model not in MODELS:
            raise InputError(f"vozo: unknown model {self.model!r}; use {', '.join(MODELS)}")
        self.client = ApiClient(
            "Vozo",
            services,
            key_env="VOZO_API_KEY",
            auth_header="Authorization",
            key_prefix="Bearer ",
        )
        self.base = services.url("VOZO_API_URL", API_URL)
        self.services, self.s3 = services, s3
        Staging(services, "Vozo")  # a missing REELFORGE_STAGING fails before any work
        self.poll_interval, self.timeout = poll_interval, timeout

    def render(self, visual: Path, audio: Path, sync_mode: str = "cut") -> tuple[bytes, dict]:
        """The talking video's bytes and what Vozo said (no sync-mode choice: the result is
        trimmed or padded to the audio by our pipeline)."""
        kind = "image" if visual.suffix.lower() in IMAGE_SUFFIXES else "video"
        with (
            tempfile.TemporaryDirectory(prefix="reelforge-vozo-") as tmp,
            Staging(self.services, "Vozo", self.s3) as staging,
        ):
            if kind == "video":
                visual = video_as(visual, VIDEO_SUFFIXES, Path(tmp))
            reference_url = staging.url(visual)
            audio_url = staging.url(audio_as(audio, AUDIO_SUFFIXES, Path(tmp)))
            created = self.client.request(
                "POST",
                f"{self.base}/v1/video_generation",
                json={
                    "reference_file_url": reference_url,
                    "reference_file_type": kind,
                    "audio_url": audio_url,
                    "model": self.model,
                },
            ).json()
            task = created.get("task_id")
            if not task:
                raise BackendError("Vozo: creating the job returned no task_id")
            status = self.client.poll(
                f"{self.base}/v1/video_generation/{task}",
                done=lambda d: d.get("status") in ("done", "failed"),
                interval=self.poll_interval,
                timeout=self.timeout,
            )
        if status.get("status") != "done":
            why = reason(status, ("message", "err_message", "error"), self.client.scrub)
            raise BackendError(
                f"Vozo: job {task} ended as {status.get('status')}" + (f": {why}" if why else "")
            )
        if not status.get("video_url"):
            raise BackendError(f"Vozo: job {task} is done but has no video_url")
        video = self.client.request("GET", status["video_url"], auth=False).content
        return video, {"task_id": task, "model": self.model, "input": kind}
