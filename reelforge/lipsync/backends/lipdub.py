"""``lipdub``: LipDub 2's direct renders (a video of one speaking person and an audio track
in, the video re-lipped out).

Protocol (lipdub.readme.io, as LipDub's own MCP client drives it): ``POST /v1/renders``
with ``video_url``, ``audio_url`` and ``output_filename`` answers either 202 with
``data.tracking_id`` (the sources are being fetched) or 201 with ``data.generate_id`` (and
``data.credit.balance``). ``GET /v1/renders/track/{tracking_id}`` answers ``data.status``
(``ingesting``, ``dispatching``, then ``dispatched`` with a ``generate_id``, or ``failed``
with a ``failure_reason``); ``GET /v1/renders/{generate_id}/status`` answers
``data.status`` (``not_started``, ``pending``, ``running``, then ``finished``, or
``failed``/``cancelled``/``skipped``); ``GET /v1/renders/{generate_id}/download`` answers
``data.download_url``. The key is the :class:`~reelforge.config.Services`'
``LIPDUB_API_KEY``, sent as ``X-Api-Key``; ``LIPDUB_API_URL`` points elsewhere. The credit
balance, when LipDub reports it, is kept in the job facts.

LipDub fetches its inputs (.mp4/.mov/.avi video; .mp3/.wav/.m4a/.aac/.ogg/.flac audio,
others converted first), so they go through
:class:`~reelforge.lipsync.backends.staging.Staging` (``REELFORGE_STAGING``).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from reelforge.config import Services
from reelforge.errors import BackendError
from reelforge.http.client import ApiClient
from reelforge.lipsync.backends.prep import audio_as, reason, video_as
from reelforge.lipsync.backends.staging import Staging

API_URL = "https://api.lipdub.ai"
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi")
AUDIO_SUFFIXES = (".mp3", ".wav", ".m4a", ".aac", ".ogg", ".flac")
JOB_FAILED = ("failed", "cancelled", "skipped")


def _data(body: dict) -> dict:
    data = body.get("data", body)
    return data if isinstance(data, dict) else {}


class LipDubBackend:
    name = "lipdub"
    accepts = ("video",)

    def __init__(
        self,
        services: Services,
        model: str | None = None,
        poll_interval: float = 10.0,
        timeout: float = 3600.0,
        s3=None,
    ) -> None:
        self.client = ApiClient(
            "LipDub", services, key_env="LIPDUB_API_KEY", auth_header="X-Api-Key"
        )
        self.base = services.url("LIPDUB_API_URL", API_URL)
        self.services, self.s3 = services, s3
        Staging(services, "LipDub")  # a missing REELFORGE_STAGING fails before any work
        self.poll_interval, self.timeout = poll_interval, timeout

    def render(self, visual: Path, audio: Path, sync_mode: str = "cut") -> tuple[bytes, dict]:
        """The re-lipped video's bytes and what LipDub said (no sync-mode choice: our
        pipeline trims or pads the result to the audio)."""
        deadline = time.monotonic() + self.timeout
        job: dict = {}
        with (
            tempfile.TemporaryDirectory(prefix="reelforge-lipdub-") as tmp,
            Staging(self.services, "LipDub", self.s3) as staging,
        ):
            video = video_as(visual, VIDEO_SUFFIXES, Path(tmp))
            created = _data(
                self.client.request(
                    "POST",
                    f"{self.base}/v1/renders",
                    json={
                        "video_url": staging.url(video),
                        "audio_url": staging.url(audio_as(audio, AUDIO_SUFFIXES, Path(tmp))),
                        "output_filename": f"{visual.stem}-lipdub.mp4",
                    },
                ).json()
            )
            balance = (created.get("credit") or {}).get("balance")
            if balance is not None:
                job["credits_remaining"] = balance
            generate_id = created.get("generate_id")
            if generate_id is None:
                tracking = created.get("tracking_id")
                if not tracking:
                    raise BackendError("LipDub: starting the render returned no id")
                job["tracking_id"] = tracking
                ingest = _data(
                    self.client.poll(
                        f"{self.base}/v1/renders/track/{tracking}",
                        done=lambda d: (
                            _data(d).get("status") == "failed"
                            or (
                                _data(d).get("status") == "dispatched"
                                and _data(d).get("generate_id") is not None
                            )
                        ),
                        interval=self.poll_interval,
                        timeout=self.timeout,
                    )
                )
                if ingest.get("status") == "failed":
                    why = reason(ingest, ("failure_reason",), self.client.scrub)
                    raise BackendError(
                        f"LipDub: render {tracking} ended as failed while "
                        "fetching its sources" + (f": {why}" if why else "")
                    )
                generate_id = ingest["generate_id"]
        job["generate_id"] = generate_id
        status = _data(
            self.client.poll(
                f"{self.base}/v1/renders/{generate_id}/status",
                done=lambda d: _data(d).get("status") in ("finished", *JOB_FAILED),
                interval=self.poll_interval,
                timeout=max(0.0, deadline - time.monotonic()),
            )
        )
        if status.get("status") != "finished":
            why = reason(status, ("failure_reason", "error", "message"), self.client.scrub)
            raise BackendError(
                f"LipDub: render {generate_id} ended as {status.get('status')}"
                + (f": {why}" if why else "")
            )
        link = _data(
            self.client.request("GET", f"{self.base}/v1/renders/{generate_id}/download").json()
        ).get("download_url")
        if not link:
            raise BackendError(f"LipDub: render {generate_id} is finished but has no download_url")
        return self.client.request("GET", link, auth=False).content, job
