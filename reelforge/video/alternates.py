"""Alternate audio tracks: other languages of the main audio, loudness-normalised.

Contract: :func:`check_audio` refuses (one-line :class:`~reelforge.errors.InputError`) a
file that is missing or has no audio stream. :func:`prepare` measures a track's integrated
loudness and true peak (ITU-R BS.1770 through ffmpeg's ``ebur128``, on the 48 kHz stereo
signal that will be encoded) and returns the filter chain that brings it to the voice
step's target (:data:`reelforge.voice.post.TARGET_LUFS`, -16 LUFS) with the true peak
under :data:`~reelforge.voice.post.TRUE_PEAK_CEILING` less the lossy-codec margin, as
:func:`reelforge.voice.post.normalize_for` does for AAC: a plain gain when the peaks allow
it, else the gain into a true-peak limiter (oversampled 4x, 5 ms look-ahead, 150 ms
release, latency compensated) with the drive corrected until the loudness lands within
0.1 LU of the target. The chain also pads or trims the track to the video's duration, so
every audio rendition lasts as long as the stream. Everything streams through ffmpeg: a
track of any length needs no more memory than a short one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from reelforge.errors import InputError
from reelforge.media import ffmpeg
from reelforge.media.probe import probe

# the voice step's loudness rules (reelforge.voice.post), repeated here so publishing does
# not import the voice stack (numpy, scipy, pyloudnorm) to read three numbers
TARGET_LUFS = -16.0
TRUE_PEAK_CEILING = -1.0  # dBTP
LOSSY_MARGIN = 0.8  # dB of headroom for AAC's overshoot
MAX_GAIN_DB = 24.0
SILENT_LUFS = -69.0  # BS.1770's absolute gate is -70 LUFS: below this there is nothing
STEREO_48K = "aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo"


@dataclass(frozen=True)
class PreparedAudio:
    """An alternate audio track ready to encode: ``filters`` is its ``-af`` chain."""

    language: str
    path: Path
    duration: float  # the input's own duration
    input_lufs: float
    input_true_peak: float
    gain_db: float
    limited: bool
    output_lufs: float
    output_true_peak: float
    filters: str
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {"language": self.language, "input": str(self.path),
                "input_duration": round(self.duration, 3),
                "input_lufs": round(self.input_lufs, 2),
                "input_true_peak_dbtp": round(self.input_true_peak, 2),
                "gain_db": round(self.gain_db, 2), "limited": self.limited,
                "lufs": round(self.output_lufs, 2),
                "true_peak_dbtp": round(self.output_true_peak, 2)}  # fmt: skip


def check_audio(path: Path, option: str = "--audio-track") -> float:
    """Refuse a file that is missing or holds no audio; returns its duration."""
    if not path.is_file():
        raise InputError(f"{option}: audio file not found", path=path)
    info = probe(path)
    if not info.audio:
        raise InputError(f"{option}: has no audio stream", path=path)
    return info.duration


def _escape(path: Path) -> str:
    return str(path).replace("\\", "\\\\").replace(":", "\\:").replace("'", "\\'")


def measure(path: Path, workdir: Path, chain: str = "") -> tuple[float, float]:
    """(integrated loudness in LUFS, true peak in dBTP) of ``path``'s first audio stream
    after ``chain`` (filters), as 48 kHz stereo."""
    log = workdir / f"ebur128-{path.stem}-{abs(hash(chain)) % 10**8}.txt"
    graph = ",".join(f for f in (STEREO_48K, chain, "ebur128=peak=true:metadata=1",
                                 f"ametadata=mode=print:file={_escape(log)}") if f)  # fmt: skip
    ffmpeg.run(["-i", str(path), "-map", "0:a:0", "-vn", "-af", graph, "-f", "null", "-"],
               subject=path)  # fmt: skip
    loudness, peak = -math.inf, 0.0
    with log.open(encoding="utf-8") as lines:
        for line in lines:
            key, _, value = line.strip().partition("=")
            if key == "lavfi.r128.I":  # integrated so far: the last one is the whole's
                loudness = float(value)
            elif key == "lavfi.r128.true_peak":  # linear
                peak = max(peak, float(value))
    log.unlink(missing_ok=True)
    return loudness, 20 * math.log10(peak) if peak > 0 else -math.inf


def _chain(gain_db: float, limit_db: float | None) -> str:
    steps = [f"volume={gain_db:.3f}dB"]
    if limit_db is not None:
        steps += ["aresample=192000", f"alimiter=limit={10 ** (limit_db / 20):.5f}:attack=5"
                  ":release=150:level=0:latency=1", "aresample=48000"]  # fmt: skip
    return ",".join(steps)


def prepare(path: Path, language: str, workdir: Path, *, duration: float,
            target_lufs: float = TARGET_LUFS) -> PreparedAudio:  # fmt: skip
    """Measure ``path`` and plan its normalisation (see the module's contract); the chain
    ends at ``duration`` seconds (padded with silence or trimmed)."""
    own = check_audio(path)
    ceiling = TRUE_PEAK_CEILING - LOSSY_MARGIN
    loudness, peak = measure(path, workdir)
    notes: list[str] = []
    if not math.isfinite(loudness) or loudness < SILENT_LUFS:
        gain, limit, out_lufs, out_peak = 0.0, None, loudness, peak
        notes.append(f"{language} audio is silent: left as it is")
    else:
        gain = min(MAX_GAIN_DB, target_lufs - loudness)
        limit = None
        out_lufs, out_peak = loudness + gain, peak + gain
        if out_peak > ceiling:  # limiting lowers loudness: drive harder until it lands
            limit = ceiling - 0.1
            for _ in range(3):
                out_lufs, out_peak = measure(path, workdir, _chain(gain, limit))
                miss = target_lufs - out_lufs
                if abs(miss) < 0.1 or gain >= MAX_GAIN_DB:
                    break
                gain = min(MAX_GAIN_DB, gain + miss)
    if own < duration - 0.5:
        notes.append(f"{language} audio is {duration - own:.1f} s shorter than the video: "
                     "padded with silence")  # fmt: skip
    elif own > duration + 0.5:
        notes.append(f"{language} audio is {own - duration:.1f} s longer than the video: trimmed")
    filters = ",".join([STEREO_48K, _chain(gain, limit), "aresample=async=1:first_pts=0",
                        f"apad=whole_dur={duration:.6f}", f"atrim=end={duration:.6f}"])  # fmt: skip
    return PreparedAudio(language=language, path=path, duration=own, input_lufs=loudness,
                         input_true_peak=peak, gain_db=gain, limited=limit is not None,
                         output_lufs=out_lufs, output_true_peak=out_peak, filters=filters,
                         notes=tuple(notes))  # fmt: skip
