"""DNSMOS (P.835) speech quality from the ONNX models the ``speechmos`` wheel ships.

Contract: :func:`dnsmos` returns overall, signal, background and P.808 scores for mono
audio at any rate (resampled to 16 kHz), or ``None`` when speechmos is not installed or the
audio is shorter than half a second.

DNSMOS is level-sensitive: here the same Piper speech scored 3.37 at -26 LUFS and 3.21 at
-16 LUFS with no other change. Audio is therefore scored at the ITU-T P.56 reference speech
level (about -26 dBov, taken as -26 LUFS), so the score describes the voice, not how loud it
is delivered.
"""

from __future__ import annotations

import threading

import numpy as np

from reelforge.voice.post import loudness, resample

REFERENCE_LUFS = -26.0
_lock = threading.Lock()


def dnsmos(audio: np.ndarray, rate: int) -> dict[str, float] | None:
    if audio.size < rate // 2:
        return None
    try:
        from speechmos import dnsmos as model
    except ImportError:
        return None
    level = loudness(audio, rate)
    if not np.isfinite(level):
        return None
    x = resample(audio * 10 ** ((REFERENCE_LUFS - level) / 20), rate, 16_000)
    x = np.clip(x, -1.0, 1.0).astype(np.float32)
    with _lock:
        scores = model.run(x, 16_000)
    return {
        "overall": round(float(scores["ovrl_mos"]), 3),
        "signal": round(float(scores["sig_mos"]), 3),
        "background": round(float(scores["bak_mos"]), 3),
        "p808": round(float(scores["p808_mos"]), 3),
    }
