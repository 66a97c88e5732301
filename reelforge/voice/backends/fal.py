"""``fal``: Dia on fal.ai through its queue API.

``fal-ai/dia-tts`` speaks a chunk; ``fal-ai/dia-tts/voice-clone`` speaks it in the voice of a
reference clip (``ref_audio_url`` + ``ref_text``). Protocol: POST the input to
``{queue}/{endpoint}``, poll the ``status_url`` the answer names until ``COMPLETED``, GET the
``response_url``, download ``audio.url``. The key comes from ``FAL_KEY``.
"""

from __future__ import annotations

import os

import numpy as np

from reelforge.errors import BackendError
from reelforge.http.client import ApiClient
from reelforge.voice.backends.base import Chunk, Synthesis
from reelforge.voice.backends.hosted import decode_bytes, wav_data_uri

QUEUE_URL = "https://queue.fal.run"
TTS = "fal-ai/dia-tts"
CLONE = "fal-ai/dia-tts/voice-clone"


class FalBackend:
    name = "fal"
    concurrency = 4  # requests in flight at once
    uses_prompts = True

    def __init__(self, base_url: str | None = None, poll_interval: float = 1.0, **_) -> None:
        self.client = ApiClient("fal.ai", key_env="FAL_KEY", auth_header="Authorization",
                                key_prefix="Key ")  # fmt: skip
        self.base = (base_url or os.environ.get("FAL_QUEUE_URL") or QUEUE_URL).rstrip("/")
        self.poll_interval = poll_interval
        self.params: dict = {}

    @property
    def model(self) -> str:
        return "fal-ai/dia-tts"

    def synthesize(self, chunk: Chunk, voices, prompts) -> Synthesis:
        speakers = list(dict.fromkeys(line.speaker for line in chunk.lines))
        usable = [s for s in speakers if s in prompts]
        payload: dict = {"text": chunk.dia_text()}
        endpoint = TTS
        if usable:
            # Dia clones by reading the reference transcript first; one prompt per call.
            audio, rate, transcript = prompts[usable[0]]
            endpoint = CLONE
            payload.update(ref_audio_url=wav_data_uri(audio, rate),
                           ref_text=f"[{usable[0]}] {transcript}")  # fmt: skip
        submitted = self.client.request("POST", f"{self.base}/{endpoint}", json=payload).json()
        status_url = submitted.get("status_url")
        response_url = submitted.get("response_url")
        if not status_url or not response_url:
            raise BackendError("fal.ai: the queue did not return status and response URLs")
        status = self.client.poll(
            status_url,
            done=lambda d: d.get("status") in ("COMPLETED", "FAILED", "CANCELED", "ERROR"),
            interval=self.poll_interval,
        )
        if status.get("status") != "COMPLETED":
            raise BackendError(f"fal.ai: request ended as {status.get('status')}")
        result = self.client.request("GET", response_url).json()
        url = (result.get("audio") or {}).get("url")
        if not url:
            raise BackendError("fal.ai: the result has no audio URL")
        data = self.client.request("GET", url, auth=False).content
        audio, rate = decode_bytes(data, "fal.ai")
        cost = {"request_id": submitted.get("request_id"), "endpoint": endpoint}
        if "metrics" in status:
            cost["metrics"] = status["metrics"]
        return Synthesis(np.asarray(audio, np.float32), rate, None, f"{endpoint}", cost=cost)
