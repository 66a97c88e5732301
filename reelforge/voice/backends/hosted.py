"""Helpers shared by hosted speech backends: audio bytes in and out."""

from __future__ import annotations

import base64
import io
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from reelforge.errors import BackendError
from reelforge.voice import post


def decode_bytes(data: bytes, service: str) -> tuple[np.ndarray, int]:
    """Decode audio bytes of any container ffmpeg reads to mono float32 at 48 kHz."""
    with tempfile.TemporaryDirectory(prefix="reelforge-") as tmp:
        path = Path(tmp) / "audio.bin"
        path.write_bytes(data)
        try:
            return post.decode(path), post.RATE
        except ValueError:
            raise BackendError(f"{service} returned something that is not audio") from None


def wav_data_uri(audio: np.ndarray, rate: int) -> str:
    buf = io.BytesIO()
    sf.write(buf, audio, rate, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode()
