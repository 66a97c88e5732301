"""Speech features per video frame, shared by the sync meter and the mouth animator."""

from __future__ import annotations

import numpy as np

RATE = 16_000
BAND = (300.0, 3000.0)


def band_energy(audio: np.ndarray, n_frames: int, fps: float, rate: int = RATE) -> np.ndarray:
    """log10 energy between 300 and 3000 Hz in a two-frame Hann window centred on the middle
    of each frame's display interval ((i + 0.5) / fps); silence past the audio's end."""
    hop = rate / fps
    win = int(2 * hop)
    window = np.hanning(win).astype(np.float32)
    freqs = np.fft.rfftfreq(win, 1 / rate)
    band = (freqs >= BAND[0]) & (freqs <= BAND[1])
    starts = ((np.arange(n_frames) + 0.5) * hop).astype(int) + win - win // 2
    end = int(starts[-1]) + win if n_frames else 0  # audio shorter than the picture: silence
    padded = np.pad(audio.astype(np.float32), (win, max(win, end - win - audio.size)))
    frames = np.stack([padded[s : s + win] for s in starts]) if n_frames else np.zeros((0, win))
    spec = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    return np.log10(spec[:, band].sum(axis=1) + 1e-10)


def speech_mask(energy: np.ndarray) -> np.ndarray:
    """Frames whose band energy is 15 dB over the quiet parts (the 10th percentile)."""
    if energy.size == 0:
        return np.zeros(0, bool)
    return energy > np.percentile(energy, 10) + 1.5
