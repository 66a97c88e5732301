"""fal.ai's queue and storage protocols, shared by every fal backend.

Queue: POST the input to ``{queue}/{endpoint}``; the answer names a ``status_url`` and a
``response_url``; poll the status until ``COMPLETED`` (or a failure); GET the response.
Storage: POST ``{rest}/storage/upload/initiate`` with the file's name and type, PUT the
bytes to the ``upload_url`` it returns, and use its ``file_url`` as an input. The key is the
given :class:`~reelforge.config.Services`' ``FAL_KEY``; its ``FAL_QUEUE_URL`` and
``FAL_REST_URL`` point elsewhere (a proxy, a test).
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from reelforge.config import Services
from reelforge.errors import BackendError
from reelforge.http.client import ApiClient

QUEUE_URL = "https://queue.fal.run"
REST_URL = "https://rest.alpha.fal.ai"
FAILED = ("FAILED", "CANCELED", "CANCELLED", "ERROR")


class FalQueue:
    def __init__(self, services: Services, queue_url: str | None = None,
                 poll_interval: float = 1.0, timeout: float = 900.0) -> None:  # fmt: skip
        self.client = ApiClient("fal.ai", services, key_env="FAL_KEY",
                                auth_header="Authorization", key_prefix="Key ")  # fmt: skip
        self.queue = (queue_url or services.url("FAL_QUEUE_URL", QUEUE_URL)).rstrip("/")
        self.rest = services.url("FAL_REST_URL", REST_URL)
        self.poll_interval = poll_interval
        self.timeout = timeout

    def run(self, endpoint: str, payload: dict) -> tuple[dict, dict]:
        """The endpoint's result, and what the queue said about the request."""
        submitted = self.client.request("POST", f"{self.queue}/{endpoint}", json=payload).json()
        status_url = submitted.get("status_url")
        response_url = submitted.get("response_url")
        if not status_url or not response_url:
            raise BackendError("fal.ai: the queue did not return status and response URLs")
        status = self.client.poll(
            status_url,
            done=lambda d: d.get("status") == "COMPLETED" or d.get("status") in FAILED,
            interval=self.poll_interval,
            timeout=self.timeout,
        )
        if status.get("status") != "COMPLETED":
            why = status.get("error") or status.get("detail") or ""
            raise BackendError(
                f"fal.ai: {endpoint} request ended as {status.get('status')}"
                + (f": {self.client.scrub(str(why))[:200]}" if why else "")
            )
        result = self.client.request("GET", response_url).json()
        job = {"request_id": submitted.get("request_id"), "endpoint": endpoint}
        if "metrics" in status:
            job["metrics"] = status["metrics"]
        return result, job

    def upload(self, path: Path) -> str:
        """Put a local file in fal's storage; returns the URL a request can name."""
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        ticket = self.client.request(
            "POST",
            f"{self.rest}/storage/upload/initiate?storage_type=fal-cdn-v3",
            json={"file_name": path.name, "content_type": mime},
        ).json()
        if not ticket.get("upload_url") or not ticket.get("file_url"):
            raise BackendError("fal.ai: the storage did not return upload and file URLs")
        self.client.request("PUT", ticket["upload_url"], auth=False,
                            content=path.read_bytes(), headers={"Content-Type": mime})  # fmt: skip
        return ticket["file_url"]

    def download(self, url: str) -> bytes:
        return self.client.request("GET", url, auth=False).content
