"""Hosted lip-sync APIs behind one interface.

Contract: every backend has a ``name``, the inputs it ``accepts`` (``"image"``,
``"video"``) and ``render(visual, audio, sync_mode) -> (video bytes, job facts)``. Local
files reach each service through its own upload protocol; keys and base URLs come from the
:class:`~reelforge.config.Services` each backend is made with (keys never logged); requests
go through :class:`~reelforge.http.client.ApiClient` (timeouts, backoff on 429/5xx). A
failed or rejected job and a job that outlives ``timeout`` raise
:class:`~reelforge.errors.BackendError`.

- ``syncso``: sync.so v2. Assets: ``POST /v2/assets/upload`` (name, type, size) returns a
  presigned ``uploadUrl`` to PUT the bytes to and the file's ``url``, registered with
  ``POST /v2/assets`` for an ``id``. ``POST /v2/generate`` with the model (``lipsync-2`` or
  ``lipsync-2-pro``), a video and an audio input by ``assetId`` and ``options.sync_mode``;
  poll ``GET /v2/generate/{id}`` until ``COMPLETED`` and download ``outputUrl``.
  ``SYNC_API_KEY`` in ``x-api-key``; ``SYNC_API_URL`` points elsewhere.
- ``fal``: ``fal-ai/sync-lipsync`` (``sync_mode``) or ``fal-ai/latentsync`` (``loop_mode``)
  through fal's queue, inputs put in fal's storage first (:mod:`reelforge.http.fal`).
- ``sonic``: Sonic (a portrait and audio to a talking video) through Replicate's
  predictions API: files ``POST /v1/files`` (multipart ``content``), ``POST
  /v1/predictions`` with the model version and input, poll the prediction until
  ``succeeded``, download ``output``. ``REPLICATE_API_TOKEN`` as a Bearer token;
  ``REPLICATE_API_URL`` points elsewhere; ``REELFORGE_SONIC_VERSION`` picks the version.
- ``did``, ``tavus``, ``heygen``, ``synthesia``, ``vozo``, ``lipdub``: see their modules
  in :mod:`reelforge.lipsync.backends`.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from reelforge.config import Services
from reelforge.errors import BackendError, InputError
from reelforge.http.client import ApiClient
from reelforge.http.fal import FalQueue
from reelforge.lipsync.backends.did import DidBackend
from reelforge.lipsync.backends.heygen import HeyGenBackend
from reelforge.lipsync.backends.lipdub import LipDubBackend
from reelforge.lipsync.backends.synthesia import SynthesiaBackend
from reelforge.lipsync.backends.tavus import TavusBackend
from reelforge.lipsync.backends.vozo import VozoBackend

# Our sync modes in each service's words.
SYNCSO_MODES = {"cut": "cut_off", "loop": "loop", "pingpong": "bounce", "pad": "silence"}
SONIC_VERSION = "07054b4b5d75419a973f91670982b28aa591e17906583d78a03a1c946ed107fe"


def _mime(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


class SyncSoBackend:
    name = "syncso"
    accepts = ("video",)
    models = ("lipsync-2", "lipsync-2-pro")
    FINAL = ("COMPLETED", "FAILED", "REJECTED", "CANCELED", "CANCELLED")

    def __init__(self, services: Services, model: str | None = None, poll_interval: float = 2.0,
                 timeout: float = 900.0) -> None:  # fmt: skip
        self.model = model or "lipsync-2"
        if self.model not in self.models:
            raise InputError(f"syncso: unknown model {self.model!r}; use {', '.join(self.models)}")
        self.client = ApiClient("sync.so", services, key_env="SYNC_API_KEY",
                                auth_header="x-api-key")  # fmt: skip
        self.base = services.url("SYNC_API_URL", "https://api.sync.so")
        self.poll_interval, self.timeout = poll_interval, timeout

    def _asset(self, path: Path) -> str:
        data = path.read_bytes()
        about = {"fileName": path.name, "contentType": _mime(path), "size": len(data)}
        ticket = self.client.request("POST", f"{self.base}/v2/assets/upload", json=about).json()
        if not ticket.get("uploadUrl") or not ticket.get("url"):
            raise BackendError("sync.so: the asset upload returned no uploadUrl/url")
        self.client.request("PUT", ticket["uploadUrl"], auth=False, content=data,
                            headers={"Content-Type": _mime(path)})  # fmt: skip
        register = {"url": ticket["url"], "name": path.name}
        asset = self.client.request("POST", f"{self.base}/v2/assets", json=register).json()
        if not asset.get("id"):
            raise BackendError("sync.so: registering the asset returned no id")
        return asset["id"]

    def render(self, visual: Path, audio: Path, sync_mode: str) -> tuple[bytes, dict]:
        inputs = [{"type": "video", "assetId": self._asset(visual)},
                  {"type": "audio", "assetId": self._asset(audio)}]  # fmt: skip
        created = self.client.request("POST", f"{self.base}/v2/generate", json={
            "model": self.model, "input": inputs,
            "options": {"sync_mode": SYNCSO_MODES[sync_mode]}}).json()  # fmt: skip
        job_id = created.get("id")
        if not job_id:
            raise BackendError("sync.so: creating the generation returned no id")
        status = self.client.poll(f"{self.base}/v2/generate/{job_id}",
                                  done=lambda d: d.get("status") in self.FINAL,
                                  interval=self.poll_interval, timeout=self.timeout)  # fmt: skip
        if status.get("status") != "COMPLETED":
            why = self.client.scrub(str(status.get("error") or ""))[:200]
            raise BackendError(f"sync.so: generation {job_id} ended as {status.get('status')}"
                               + (f": {why}" if why else ""))  # fmt: skip
        if not status.get("outputUrl"):
            raise BackendError(f"sync.so: generation {job_id} is complete but has no outputUrl")
        video = self.client.request("GET", status["outputUrl"], auth=False).content
        return video, {"id": job_id, "model": self.model,
                       "output_duration": status.get("outputDuration")}  # fmt: skip


class FalLipsyncBackend:
    name = "fal"
    accepts = ("video",)
    models = ("fal-ai/sync-lipsync", "fal-ai/latentsync")

    def __init__(self, services: Services, model: str | None = None, poll_interval: float = 2.0,
                 timeout: float = 900.0) -> None:  # fmt: skip
        self.model = model or "fal-ai/sync-lipsync"
        if self.model not in self.models:
            raise InputError(f"fal: unknown model {self.model!r}; use {', '.join(self.models)}")
        self.queue = FalQueue(services, poll_interval=poll_interval, timeout=timeout)
        self.client = self.queue.client

    def render(self, visual: Path, audio: Path, sync_mode: str) -> tuple[bytes, dict]:
        payload: dict = {"video_url": self.queue.upload(visual),
                         "audio_url": self.queue.upload(audio)}  # fmt: skip
        if self.model == "fal-ai/latentsync":
            payload["loop_mode"] = "pingpong" if sync_mode == "pingpong" else "loop"
        else:
            payload["sync_mode"] = SYNCSO_MODES[sync_mode]
        result, job = self.queue.run(self.model, payload)
        url = (result.get("video") or {}).get("url")
        if not url:
            raise BackendError(f"fal.ai: {self.model} returned no video URL")
        return self.queue.download(url), job


class SonicBackend:
    name = "sonic"
    accepts = ("image",)
    FINAL = ("succeeded", "failed", "canceled")

    def __init__(self, services: Services, model: str | None = None, poll_interval: float = 2.0,
                 timeout: float = 900.0) -> None:  # fmt: skip
        self.version = model or services.sonic_version or SONIC_VERSION
        self.client = ApiClient("Replicate", services, key_env="REPLICATE_API_TOKEN",
                                auth_header="Authorization", key_prefix="Bearer ")  # fmt: skip
        self.base = services.url("REPLICATE_API_URL", "https://api.replicate.com")
        self.poll_interval, self.timeout = poll_interval, timeout

    def _file(self, path: Path) -> str:
        files = {"content": (path.name, path.read_bytes(), _mime(path))}
        answer = self.client.request("POST", f"{self.base}/v1/files", files=files).json()
        url = (answer.get("urls") or {}).get("get")
        if not url:
            raise BackendError("Replicate: the file upload returned no URL")
        return url

    def render(self, visual: Path, audio: Path, sync_mode: str) -> tuple[bytes, dict]:
        created = self.client.request("POST", f"{self.base}/v1/predictions", json={
            "version": self.version,
            "input": {"image": self._file(visual), "audio": self._file(audio)}}).json()  # fmt: skip
        pid = created.get("id")
        if not pid:
            raise BackendError("Replicate: creating the prediction returned no id")
        url = (created.get("urls") or {}).get("get") or f"{self.base}/v1/predictions/{pid}"
        status = self.client.poll(url, done=lambda d: d.get("status") in self.FINAL,
                                  interval=self.poll_interval, timeout=self.timeout)  # fmt: skip
        if status.get("status") != "succeeded":
            why = self.client.scrub(str(status.get("error") or ""))[:200]
            raise BackendError(f"Replicate: prediction {pid} ended as {status.get('status')}"
                               + (f": {why}" if why else ""))  # fmt: skip
        output = status.get("output")
        output = output[-1] if isinstance(output, list) and output else output
        if not isinstance(output, str):
            raise BackendError(f"Replicate: prediction {pid} succeeded without an output URL")
        video = self.client.request("GET", output, auth=False).content
        return video, {"id": pid, "version": self.version, "metrics": status.get("metrics")}


HOSTED = {"syncso": SyncSoBackend, "fal": FalLipsyncBackend, "sonic": SonicBackend,
          "did": DidBackend, "tavus": TavusBackend, "heygen": HeyGenBackend,
          "synthesia": SynthesiaBackend, "vozo": VozoBackend,
          "lipdub": LipDubBackend}  # fmt: skip
