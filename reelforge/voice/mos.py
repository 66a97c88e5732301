"""DNSMOS (P.835) speech quality from the ONNX models the ``speechmos`` wheel ships.

Contract: :func:`dnsmos` returns overall, signal, background and P.808 scores for mono
audio at any rate (resampled to 16 kHz), or ``None`` when speechmos is not installed or the
audio is shorter than half a second.
"""

from __future__ import annotations

import threading

import numpy as np

from reelforge.voice.post import resample

_lock = threading.Lock()


def dnsmos(audio: np.ndarray, rate: int) -> dict[str, float] | None:
    if audio.size < rate // 2:
        return None
    try:
        from speechmos import dnsmos as model
    except ImportError:
        return None
    x = resample(audio, rate, 16_000).astype(np.float32)
    peak = float(np.max(np.abs(x))) or 1.0
    with _lock:
        scores = model.run(x / peak * 0.9, 16_000)
    return {
        "overall": round(float(scores["ovrl_mos"]), 3),
        "signal": round(float(scores["sig_mos"]), 3),
        "background": round(float(scores["bak_mos"]), 3),
        "p808": round(float(scores["p808_mos"]), 3),
    }
