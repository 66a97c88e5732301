"""Audio post-processing shared by every voice backend.

Contract: :func:`resample` to 48 kHz, :func:`trim_silence`, :func:`join` with crossfades,
:func:`normalize` to an integrated loudness (ITU-R BS.1770 via pyloudnorm) with the true
peak (4x oversampled) held under a ceiling, and :func:`encode` to WAV, AAC (.m4a) or Opus
through a temporary sibling. Audio is mono float32.
"""

from __future__ import annotations

import io
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyloudnorm
import soundfile as sf
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.signal import lfilter, resample_poly

from reelforge.errors import MediaError
from reelforge.media import ffmpeg

RATE = 48_000
TARGET_LUFS = -16.0
TRUE_PEAK_CEILING = -1.0  # dBTP
LOSSY_MARGIN = 0.8  # dB of headroom for codec overshoot
FORMATS = {".wav": "wav", ".m4a": "aac", ".opus": "opus"}


def resample(audio: np.ndarray, rate: int, target: int = RATE) -> np.ndarray:
    if rate == target or audio.size == 0:
        return audio.astype(np.float32)
    ratio = Fraction(target, rate)
    return resample_poly(audio, ratio.numerator, ratio.denominator).astype(np.float32)


def true_peak_db(audio: np.ndarray) -> float:
    """True peak in dBTP: the sample peak of a 4x oversampled signal (BS.1770-4 Annex 2)."""
    if audio.size == 0:
        return -math.inf
    peak = float(np.max(np.abs(resample_poly(audio, 4, 1))))
    return 20 * math.log10(peak) if peak > 0 else -math.inf


def loudness(audio: np.ndarray, rate: int = RATE) -> float:
    """Integrated loudness in LUFS (needs at least 0.4 s of audio)."""
    if audio.size < int(0.4 * rate):
        audio = np.pad(audio, (0, int(0.4 * rate) - audio.size + 1))
    return float(pyloudnorm.Meter(rate).integrated_loudness(audio.astype(np.float64)))


def trim_silence(
    audio: np.ndarray, rate: int = RATE, threshold_db: float = -50.0, keep: float = 0.05
) -> tuple[np.ndarray, float]:
    """Drop leading and trailing silence (10 ms frames below peak + threshold), keeping
    ``keep`` seconds; returns the trimmed audio and the seconds removed at the start."""
    if audio.size == 0:
        return audio, 0.0
    frame = max(1, rate // 100)
    n = audio.size // frame
    if n == 0:
        return audio, 0.0
    rms = np.sqrt(np.mean(audio[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-20)
    floor = np.max(rms) * 10 ** (threshold_db / 20)
    loud = np.nonzero(rms > floor)[0]
    if loud.size == 0:
        return audio, 0.0
    start = max(0, loud[0] * frame - int(keep * rate))
    end = min(audio.size, (loud[-1] + 1) * frame + int(keep * rate))
    return audio[start:end], start / rate


def join(parts: list[np.ndarray], gaps: list[float], rate: int = RATE, fade: float = 0.01):
    """Concatenate ``parts`` with ``gaps[i]`` seconds of silence before part i+1 and a short
    fade on every edge (no clicks). Returns the audio and each part's start time."""
    n_fade = int(fade * rate)
    ramp = np.sin(np.linspace(0, np.pi / 2, n_fade, dtype=np.float32)) ** 2 if n_fade else None
    out: list[np.ndarray] = []
    starts: list[float] = []
    cursor = 0
    for i, part in enumerate(parts):
        if i:
            gap = np.zeros(int(gaps[i - 1] * rate), np.float32)
            out.append(gap)
            cursor += gap.size
        part = part.astype(np.float32).copy()
        if ramp is not None and part.size > 2 * n_fade:
            part[:n_fade] *= ramp
            part[-n_fade:] *= ramp[::-1]
        starts.append(cursor / rate)
        out.append(part)
        cursor += part.size
    return (np.concatenate(out) if out else np.zeros(0, np.float32)), starts


def _limit(
    audio: np.ndarray, ceiling_db: float, rate: int, attack: float = 0.005, release: float = 0.15
) -> np.ndarray:
    """A look-ahead peak limiter on the 4x oversampled envelope.

    The gain needed at each sample is spread ``attack`` seconds either side (a moving
    minimum), smoothed into ramps (a moving average no wider than that), and allowed to
    recover only slowly (a one-pole ``release``), so the gain never steps: no clicks, no
    audible distortion, and every peak is under the ceiling.
    """
    ceiling = 10 ** (ceiling_db / 20)
    over = np.abs(resample_poly(audio, 4, 1))
    env = over[: 4 * audio.size].reshape(-1, 4).max(axis=1)
    env = np.pad(env, (0, max(0, audio.size - env.size)))
    need = np.minimum(1.0, ceiling / np.maximum(env, 1e-9))
    look = max(1, int(attack * rate))
    held = minimum_filter1d(need, size=2 * look + 1, mode="nearest")
    ramp = uniform_filter1d(held, size=look, mode="nearest")
    coeff = math.exp(-1.0 / (release * rate))
    recovered = lfilter([1 - coeff], [1, -coeff], ramp - 1.0) + 1.0
    gain = np.minimum(ramp, recovered)
    return (audio * gain).astype(np.float32)


def normalize(
    audio: np.ndarray,
    rate: int = RATE,
    target_lufs: float = TARGET_LUFS,
    ceiling_db: float = TRUE_PEAK_CEILING,
) -> np.ndarray:
    """Bring integrated loudness to ``target_lufs`` with the true peak at most ``ceiling_db``."""
    if audio.size == 0 or not np.any(audio):
        return audio
    current = loudness(audio, rate)
    if not math.isfinite(current):
        return audio
    gain_db = target_lufs - current
    out = (audio * 10 ** (gain_db / 20)).astype(np.float32)
    if true_peak_db(out) <= ceiling_db - 0.05:
        return out
    # Peaks need limiting, which lowers loudness: search the drive that lands on the target.
    extra = 0.0
    for _ in range(8):
        out = _limit((audio * 10 ** ((gain_db + extra) / 20)).astype(np.float32),
                     ceiling_db - 0.1, rate)  # fmt: skip
        miss = target_lufs - loudness(out, rate)
        if abs(miss) < 0.1:
            break
        extra = min(extra + miss, 24.0)
    over = true_peak_db(out) - ceiling_db
    if over > 0:
        out = (out * 10 ** (-(over + 0.02) / 20)).astype(np.float32)
    return out


def normalize_for(
    audio: np.ndarray, suffix: str, target_lufs: float = TARGET_LUFS, rate: int = RATE
) -> np.ndarray:
    """Normalise so that the file *as encoded* meets the loudness target and the true-peak
    ceiling: lossy codecs overshoot peaks, so the encoded result is decoded, measured, and the
    limiter's ceiling lowered by the overshoot until it fits (at most four rounds)."""
    suffix = suffix.lower()
    ceiling = TRUE_PEAK_CEILING if suffix == ".wav" else TRUE_PEAK_CEILING - LOSSY_MARGIN
    out = normalize(audio, rate, target_lufs, ceiling)
    if suffix == ".wav":
        return out
    import tempfile

    with tempfile.TemporaryDirectory(prefix="reelforge-tp-") as tmp:
        probe = Path(tmp) / f"probe{suffix}"
        for _ in range(4):
            encode(out, probe, rate)
            overshoot = true_peak_db(decode(probe, rate)) - TRUE_PEAK_CEILING
            if overshoot <= -0.05:
                break
            ceiling -= overshoot + 0.2
            out = normalize(audio, rate, target_lufs, ceiling)
    return out


def _write_wav(path: Path, audio: np.ndarray, rate: int, subtype: str) -> None:
    """A WAV file written by Python's own I/O, so a failure (a full disk) is an OSError
    naming ``path`` (libsndfile reports only "System error")."""
    buf = io.BytesIO()
    sf.write(buf, audio, rate, subtype=subtype, format="WAV")
    path.write_bytes(buf.getbuffer())


def encode(audio: np.ndarray, path: Path, rate: int = RATE, subject: str | Path = "") -> None:
    """Write ``audio`` to ``path`` (format by extension) through a temporary sibling."""
    suffix = path.suffix.lower()
    tmp = path.with_name(f".{path.name}.partial{suffix}")
    try:
        if suffix == ".wav":
            _write_wav(tmp, audio, rate, "PCM_24")
        else:
            pcm = tmp.with_suffix(".pcm.wav")
            try:
                _write_wav(pcm, audio, rate, "FLOAT")
                codec = ["-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart"]
                if suffix == ".opus":
                    codec = ["-c:a", "libopus", "-b:a", "64k", "-application", "voip"]
                ffmpeg.run(["-i", str(pcm), *codec, "-f", FORMATS[suffix] if suffix == ".opus"
                            else "mp4", str(tmp)], subject=subject or path)  # fmt: skip
            finally:
                pcm.unlink(missing_ok=True)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def decode(path: Path, rate: int = RATE) -> np.ndarray:
    """Decode any audio file to mono float32 at ``rate`` (ffmpeg); :class:`ValueError`
    with ffmpeg's reason when it is not audio ffmpeg can read."""
    try:
        raw = ffmpeg.capture(["-i", str(path), "-ac", "1", "-ar", str(rate), "-f", "f32le",
                              "pipe:1"], subject=path)  # fmt: skip
    except MediaError as exc:
        raise ValueError(exc.reason) from None
    return np.frombuffer(raw, dtype=np.float32).copy()
