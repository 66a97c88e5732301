"""``segmind``: Dia on Segmind's serverless API.

POST ``{api}/dia`` with the ``x-api-key`` header and a JSON body (``text`` plus sampling
parameters and a fixed ``seed`` per speaker for a steady voice). The answer is either audio
bytes or JSON carrying base64 audio or an audio URL; the Content-Type says which. The key is
the given :class:`~reelforge.config.Services`' ``SEGMIND_API_KEY``; its ``SEGMIND_API_URL``
(or ``base_url``) points elsewhere; remaining credits are reported when the API sends them.
"""

from __future__ import annotations

import base64

from reelforge.config import Services
from reelforge.errors import BackendError
from reelforge.http.client import ApiClient
from reelforge.voice.backends.base import BackendDefaults, Chunk, Synthesis
from reelforge.voice.backends.hosted import decode_bytes

API_URL = "https://api.segmind.com/v1"


class SegmindBackend(BackendDefaults):
    name = "segmind"
    concurrency = 4  # requests in flight at once
    uses_prompts = False

    def __init__(self, services: Services, base_url: str | None = None, **_) -> None:
        self.client = ApiClient("Segmind", services, key_env="SEGMIND_API_KEY",
                                auth_header="x-api-key")  # fmt: skip
        self.base = (base_url or services.url("SEGMIND_API_URL", API_URL)).rstrip("/")
        self.params = {"cfg_scale": 3.0, "temperature": 1.3, "top_p": 0.95, "speed_factor": 0.94}

    @property
    def model(self) -> str:
        return "segmind/dia"

    def synthesize(self, chunk: Chunk, voices, prompts=None) -> Synthesis:
        first = chunk.lines[0].speaker
        seed = voices.get(first).seed if voices.get(first) and voices[first].seed else 42
        payload = {"text": chunk.dia_text(), "seed": seed, **self.params}
        response = self.client.request("POST", f"{self.base}/dia", json=payload)
        kind = response.headers.get("content-type", "").split(";")[0].strip()
        if kind.startswith("audio/") or kind == "application/octet-stream":
            data = response.content
        elif kind == "application/json":
            body = response.json()
            encoded = body.get("audio") or body.get("audio_base64") or body.get("output")
            if isinstance(encoded, str) and encoded.startswith("http"):
                data = self.client.request("GET", encoded, auth=False).content
            elif isinstance(encoded, str):
                data = base64.b64decode(encoded.split(",", 1)[-1])
            else:
                raise BackendError("Segmind: the JSON answer carries no audio")
        else:
            raise BackendError(f"Segmind: unexpected Content-Type {kind or '(none)'}")
        audio, rate = decode_bytes(data, "Segmind")
        cost = None
        credits = response.headers.get("x-remaining-credits")
        if credits is not None:
            cost = {"remaining_credits": credits}
        return Synthesis(audio, rate, None, self.model, cost=cost)
