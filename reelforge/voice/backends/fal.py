"""``fal``: Dia on fal.ai through its queue API.

``fal-ai/dia-tts`` speaks a chunk; ``fal-ai/dia-tts/voice-clone`` speaks it in the voice of a
reference clip (``ref_audio_url`` + ``ref_text``). Protocol: POST the input to
``{queue}/{endpoint}``, poll the ``status_url`` the answer names until ``COMPLETED``, GET the
``response_url``, download ``audio.url``. The key and URLs come from the given
:class:`~reelforge.config.Services` (``FAL_KEY``, ``FAL_QUEUE_URL``, ``FAL_REST_URL``).
"""

from __future__ import annotations

import numpy as np

from reelforge.config import Services
from reelforge.errors import BackendError
from reelforge.http.fal import FalQueue
from reelforge.voice.backends.base import BackendDefaults, Chunk, Synthesis
from reelforge.voice.backends.hosted import decode_bytes, wav_data_uri

TTS = "fal-ai/dia-tts"
CLONE = "fal-ai/dia-tts/voice-clone"


class FalBackend(BackendDefaults):
    name = "fal"
    concurrency = 4  # requests in flight at once
    uses_prompts = True

    def __init__(self, services: Services, base_url: str | None = None,
                 poll_interval: float = 1.0, **_) -> None:  # fmt: skip
        self.queue = FalQueue(services, base_url, poll_interval=poll_interval)
        self.client = self.queue.client
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
        result, cost = self.queue.run(endpoint, payload)
        url = (result.get("audio") or {}).get("url")
        if not url:
            raise BackendError("fal.ai: the result has no audio URL")
        data = self.queue.download(url)
        audio, rate = decode_bytes(data, "fal.ai")
        return Synthesis(np.asarray(audio, np.float32), rate, None, f"{endpoint}", cost=cost)
