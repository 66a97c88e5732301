"""``tavus``: Tavus's lipsync API (a video and an audio track in, the video re-lipped out).

Protocol (docs.tavus.io, "Create Lipsync" and "Get Lipsync"): ``POST /v2/lipsync`` with
``original_video_url`` and ``source_audio_url`` (direct links the service downloads:
"publicly accessible / presigned S3 URL") answers a ``lipsync_id`` and ``status``
(``started``); ``GET /v2/lipsync/{lipsync_id}`` answers its ``status`` and, once done, a
``video_url`` to download. Tavus documents no status names beyond ``started``: a job is
done when it reports ``completed`` (or ``ready``) with a ``video_url``, failed when it
reports ``error``/``failed``, quoting the first of ``error``, ``error_message``,
``status_details`` it carries. The key is the :class:`~reelforge.config.Services`'
``TAVUS_API_KEY``, sent as ``x-api-key``; ``TAVUS_API_URL`` points elsewhere.

Tavus takes MP4 video and MP3 or WAV audio (other containers are converted first). The
inputs reach Tavus through :class:`~reelforge.lipsync.backends.staging.Staging`
(``REELFORGE_STAGING``): uploaded to S3, read through presigned GET URLs that expire after
``REELFORGE_STAGING_EXPIRY`` seconds, and deleted when the job ends, however it ends. Tavus's
API reference marks this endpoint deprecated ("no longer supported"); it is driven as
documented.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from reelforge.config import Services
from reelforge.errors import BackendError
from reelforge.http.client import ApiClient
from reelforge.lipsync.backends.prep import audio_as, reason, video_as
from reelforge.lipsync.backends.staging import Staging

API_URL = "https://tavusapi.com"
DONE = ("completed", "ready")
FAILED = ("error", "failed", "deleted")


class TavusBackend:
    name = "tavus"
    accepts = ("video",)

    def __init__(
        self,
        services: Services,
        model: str | None = None,
        poll_interval: float = 5.0,
        timeout: float = 900.0,
        s3=None,
    ) -> None:
        self.client = ApiClient("Tavus", services, key_env="TAVUS_API_KEY", auth_header="x-api-key")
        self.base = services.url("TAVUS_API_URL", API_URL)
        self.services, self.s3 = services, s3
        Staging(services, "Tavus")  # a missing REELFORGE_STAGING fails before any work
        self.poll_interval, self.timeout = poll_interval, timeout

    def render(self, visual: Path, audio: Path, sync_mode: str = "cut") -> tuple[bytes, dict]:
        """The re-lipped video's bytes and what Tavus said (Tavus has no sync-mode choice:
        our pipeline trims or pads the result to the audio)."""
        with (
            tempfile.TemporaryDirectory(prefix="reelforge-tavus-") as tmp,
            Staging(self.services, "Tavus", self.s3) as staging,
        ):
            video_url = staging.url(video_as(visual, (".mp4",), Path(tmp)))
            audio_url = staging.url(audio_as(audio, (".mp3", ".wav"), Path(tmp)))
            created = self.client.request(
                "POST",
                f"{self.base}/v2/lipsync",
                json={
                    "original_video_url": video_url,
                    "source_audio_url": audio_url,
                    "lipsync_name": f"reelforge {visual.stem}",
                },
            ).json()
            job_id = created.get("lipsync_id") or created.get("request_id")
            if not job_id:
                raise BackendError("Tavus: creating the lipsync returned no lipsync_id")
            status = self.client.poll(
                f"{self.base}/v2/lipsync/{job_id}",
                done=lambda d: str(d.get("status", "")).lower() in DONE + FAILED,
                interval=self.poll_interval,
                timeout=self.timeout,
            )
        state = str(status.get("status", "")).lower()
        if state in FAILED:
            why = reason(status, ("error", "error_message", "status_details"), self.client.scrub)
            raise BackendError(
                f"Tavus: lipsync {job_id} ended as {state}" + (f": {why}" if why else "")
            )
        if not status.get("video_url"):
            raise BackendError(f"Tavus: lipsync {job_id} is {state} but has no video_url")
        video = self.client.request("GET", status["video_url"], auth=False).content
        return video, {"lipsync_id": job_id, "status": state}
