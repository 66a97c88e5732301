"""Phone timings for speech: forced alignment of a known transcript, else phone recognition.

Contract: :func:`timings` takes mono float audio (any rate; it is brought to 16 kHz) and,
optionally, what is said, and returns a :class:`PhoneTiming`: phones (ARPAbet labels without
stress, ``SIL`` for silence and noise) with start and end in seconds, words when a transcript
was aligned, the method used (``alignment`` or ``recognition``) and warnings. It never fails
because of the transcript: an empty one, one with no English words (another language's
script), or one that does not match the audio (judged against the unconstrained phone
recogniser) falls back to phone recognition with a warning saying why.

Both methods run PocketSphinx (the ``pocketsphinx`` wheel ships the US English acoustic
model, the CMU dictionary and a phone language model; nothing is downloaded). Words the
dictionary lacks get eSpeak NG's pronunciation. :func:`from_ipa` turns eSpeak's IPA phoneme
names (what the ``espeak`` voice reports for the speech it makes) into the same labels.
"""

from __future__ import annotations

import ctypes
import re
import threading
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

RATE = 16_000
FRAME = 0.01  # PocketSphinx's frame step, seconds
PAD = 0.25  # silence put around the speech: the decoder needs some to start and end in
SILENCE = "SIL"
# Aligned text must explain the audio at least this well relative to free phone recognition
# (PocketSphinx's per-utterance score; text that does not match scores well below).
MIN_SCORE_RATIO = 1.0
# Mean aligned phone length beyond which the text is too short for the speech (seconds).
MAX_MEAN_PHONE = 0.25
GATE_DB = 20.0  # a recognised phone quieter than this over the quiet level is silence
_lock = threading.Lock()  # a Decoder is not shared, but model loading is serialised


@dataclass(frozen=True)
class Phone:
    label: str  # ARPAbet (AA, B, ...) or SIL
    start: float
    end: float


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float


@dataclass
class PhoneTiming:
    phones: list[Phone]
    method: str  # "alignment", "recognition" or "espeak"
    words: list[Word] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "method": self.method,
            "phones": [[p.label, round(p.start, 3), round(p.end, 3)] for p in self.phones],
            "words": [[w.text, round(w.start, 3), round(w.end, 3)] for w in self.words],
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: dict) -> PhoneTiming:
        return cls(
            phones=[Phone(str(a), float(b), float(c)) for a, b, c in data.get("phones", [])],
            method=str(data.get("method", "espeak")),
            words=[Word(str(a), float(b), float(c)) for a, b, c in data.get("words", [])],
            warnings=list(data.get("warnings", [])),
        )


# -- text ------------------------------------------------------------------------------

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
         "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen"]  # fmt: skip
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def _number(n: int) -> list[str]:
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])
    if n < 1000:
        rest = _number(n % 100) if n % 100 else []
        return [_ONES[n // 100], "hundred", *rest]
    if n < 10_000:
        rest = _number(n % 1000) if n % 1000 else []
        return [*_number(n // 1000), "thousand", *rest]
    return [_ONES[int(d)] for d in str(n)]


def normalise(transcript: str) -> list[str]:
    """Lower-case words as the dictionary spells them: numbers read out, punctuation and
    characters outside the Latin alphabet dropped (apostrophes inside words kept)."""
    words: list[str] = []
    for token in re.findall(r"[0-9]+|[a-z]+(?:'[a-z]+)*", transcript.lower()):
        words.extend(_number(int(token)) if token.isdigit() else [token])
    return words


# -- eSpeak's phonemes ---------------------------------------------------------------------

_IPA = {
    "i": ["IY"], "iː": ["IY"], "ɪ": ["IH"], "ᵻ": ["IH"], "eɪ": ["EY"], "e": ["EY"],
    "ɛ": ["EH"], "æ": ["AE"], "a": ["AE"], "aɪ": ["AY"], "aʊ": ["AW"], "ɑ": ["AA"],
    "ɑː": ["AA"], "ɒ": ["AA"], "ɔ": ["AO"], "ɔː": ["AO"], "ɔɪ": ["OY"], "oʊ": ["OW"],
    "əʊ": ["OW"], "o": ["OW"], "oː": ["OW"], "ʊ": ["UH"], "u": ["UW"], "uː": ["UW"],
    "ʌ": ["AH"], "ə": ["AH"], "ɐ": ["AH"], "ɚ": ["ER"], "ɜ": ["ER"], "ɜː": ["ER"],
    "ɝ": ["ER"], "ɪə": ["IH", "R"], "eə": ["EH", "R"], "ʊə": ["UH", "R"],
    "ɔːɹ": ["AO", "R"], "ɑːɹ": ["AA", "R"], "ɛɹ": ["EH", "R"], "ɪɹ": ["IH", "R"],
    "ʊɹ": ["UH", "R"], "oːɹ": ["AO", "R"], "aɪɚ": ["AY", "ER"], "aɪə": ["AY", "ER"],
    "aʊɚ": ["AW", "ER"], "p": ["P"], "b": ["B"], "t": ["T"], "d": ["D"], "k": ["K"],
    "ɡ": ["G"], "g": ["G"], "f": ["F"], "v": ["V"], "θ": ["TH"], "ð": ["DH"], "s": ["S"],
    "z": ["Z"], "ʃ": ["SH"], "ʒ": ["ZH"], "h": ["HH"], "x": ["HH"], "tʃ": ["CH"],
    "dʒ": ["JH"], "m": ["M"], "n": ["N"], "ŋ": ["NG"], "l": ["L"], "ɫ": ["L"], "ɹ": ["R"],
    "r": ["R"], "w": ["W"], "ʍ": ["W"], "j": ["Y"], "ɾ": ["D"], "ʔ": ["T"],
}  # fmt: skip
_MARKS = str.maketrans("", "", "ˈˌ̩̃ʰ-")


def from_ipa(name: str) -> list[str]:
    """ARPAbet labels for one eSpeak IPA phoneme name (stress and length marks ignored;
    an unknown symbol is read as its longest known prefixes; nothing known: [])."""
    s = name.translate(_MARKS).strip()
    out: list[str] = []
    while s:
        for n in range(min(4, len(s)), 0, -1):
            if s[:n] in _IPA:
                out.extend(_IPA[s[:n]])
                s = s[n:]
                break
        else:
            s = s[1:]
    return out


def espeak_pronunciation(word: str, voice: str = "en-us") -> list[str]:
    """ARPAbet phones of ``word`` as eSpeak NG would say it ([] if it says nothing)."""
    from reelforge.voice.backends.espeak import engine

    eng = engine()
    lib = eng.lib
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    lib.espeak_TextToPhonemes.argtypes = [
        ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]  # fmt: skip
    mode = 0x02 | (ord(" ") << 8)  # IPA, phonemes separated by spaces
    out: list[str] = []
    with eng.lock:
        lib.espeak_SetVoiceByName(voice.encode())
        buf = ctypes.c_char_p(word.encode("utf-8"))
        while buf.value:
            result = lib.espeak_TextToPhonemes(ctypes.byref(buf), 1, mode)
            if not result:
                break
            for name in result.decode("utf-8", "replace").split():
                out.extend(from_ipa(name))
    return out


# -- PocketSphinx --------------------------------------------------------------------------


@cache
def _model() -> tuple[str, dict[str, str]]:
    """The model folder and the dictionary (word -> its first pronunciation)."""
    from pocketsphinx import get_model_path

    folder = get_model_path("en-us")
    words: dict[str, str] = {}
    with (Path(folder) / "cmudict-en-us.dict").open(encoding="utf-8") as f:
        for line in f:
            word, _, pron = line.strip().partition(" ")
            if "(" not in word:
                words.setdefault(word, pron)
    return folder, words


def _decoder(**kwargs):
    from pocketsphinx import Decoder

    with _lock:
        return Decoder(samprate=RATE, loglevel="FATAL", **kwargs)


def _pcm(audio: np.ndarray, rate: int) -> tuple[bytes, float]:
    """16-bit PCM at :data:`RATE` with :data:`PAD` of silence either side and faint noise
    throughout (synthetic speech that starts at its first sample, or holds digital silence,
    is otherwise not decoded), and the audio's own duration."""
    audio = np.asarray(audio, np.float32)
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if rate != RATE:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(int(rate), RATE)
        audio = resample_poly(audio, RATE // g, int(rate) // g).astype(np.float32)
    pad = int(PAD * RATE)
    pcm = np.random.default_rng(0).normal(0.0, 3.0, audio.size + 2 * pad)  # dither
    pcm[pad : pad + audio.size] += np.clip(audio, -1.0, 1.0) * 32767
    return np.clip(pcm, -32768, 32767).astype(np.int16).tobytes(), audio.size / RATE


def _time(frame: int, duration: float) -> float:
    """A decoder frame's time in the caller's audio."""
    return float(min(max(frame * FRAME - PAD, 0.0), duration))


def _label(name: str) -> str:
    name = name.upper()
    return SILENCE if name.startswith(("+", "<")) or name in ("SIL", "</S>", "<S>") else name


def _merge(phones: list[Phone]) -> list[Phone]:
    """Adjacent silences joined into one."""
    out: list[Phone] = []
    for p in phones:
        if out and p.label == SILENCE and out[-1].label == SILENCE:
            out[-1] = Phone(SILENCE, out[-1].start, p.end)
        else:
            out.append(p)
    return out


def _quiet_to_silence(phones: list[Phone], audio: np.ndarray, rate: int) -> list[Phone]:
    """Recognised phones whose loudest 10 ms is under :data:`GATE_DB` over the recording's
    quiet level (its 10th percentile) become silence: breaths and room noise, not speech."""
    hop = max(1, int(rate * FRAME))
    n = audio.size // hop
    if n < 2:
        return phones
    level = 10 * np.log10(np.mean(audio[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)
    floor = np.percentile(level, 10)
    out = []
    for p in phones:
        a, b = int(p.start / FRAME), max(int(p.start / FRAME) + 1, int(p.end / FRAME))
        if p.label != SILENCE and level[a:b].size and level[a:b].max() < floor + GATE_DB:
            p = Phone(SILENCE, p.start, p.end)
        out.append(p)
    return _merge(out)


def recognise(audio: np.ndarray, rate: int = RATE) -> tuple[PhoneTiming, float]:
    """Phones recognised with the phone language model (quiet ones read as silence), and
    the decoder's score."""
    folder, _ = _model()
    dec = _decoder(allphone=f"{folder}/en-us-phone.lm.bin", lw=2.0, pip=0.3, beam=1e-20,
                   pbeam=1e-20)  # fmt: skip
    pcm, duration = _pcm(audio, rate)
    dec.start_utt()
    dec.process_raw(pcm, full_utt=True)
    dec.end_utt()
    hyp = dec.hyp()
    phones = [
        Phone(_label(s.word), _time(s.start_frame, duration), _time(s.end_frame + 1, duration))
        for s in dec.seg()
    ]
    phones = [p for p in phones if p.end > p.start]
    mono = np.asarray(audio, np.float32)
    phones = _quiet_to_silence(phones, mono.mean(axis=1) if mono.ndim > 1 else mono, rate)
    return PhoneTiming(phones, "recognition"), float(hyp.score) if hyp else 0.0


class AlignmentError(Exception):
    """The transcript could not be aligned (the message says why, for a warning)."""


def align(audio: np.ndarray, rate: int, words: list[str]) -> tuple[PhoneTiming, float]:
    """Force-align ``words`` (as :func:`normalise` gives them) to the audio: phones and
    words with their times, and the decoder's score. Raises :class:`AlignmentError`."""
    if not words:
        raise AlignmentError("the transcript has no English words")
    _, dictionary = _model()
    extra: dict[str, str] = {}
    for w in dict.fromkeys(words):
        if w not in dictionary:
            pron = espeak_pronunciation(w)
            if not pron:
                raise AlignmentError(f"no pronunciation for {w!r}")
            extra[w] = " ".join(pron)
    dec = _decoder()
    for w, pron in extra.items():
        dec.add_word(w, pron, True)
    pcm, duration = _pcm(audio, rate)
    try:
        dec.set_align_text(" ".join(words))
        dec.start_utt()
        dec.process_raw(pcm, full_utt=True)
        dec.end_utt()
        hyp = dec.hyp()
        if hyp is None:
            raise AlignmentError("the transcript does not fit the audio")
        score = float(hyp.score)
        found = [
            Word(s.word, _time(s.start_frame, duration), _time(s.end_frame + 1, duration))
            for s in dec.seg()
            if not s.word.startswith(("<", "["))
        ]
        dec.set_alignment()
        dec.start_utt()
        dec.process_raw(pcm, full_utt=True)
        dec.end_utt()
        alignment = dec.get_alignment()
        entries = list(alignment.phones()) if alignment is not None else []
    except RuntimeError as exc:
        raise AlignmentError(f"the aligner failed ({exc})") from None
    if not entries:
        raise AlignmentError("the transcript does not fit the audio")
    phones = [
        Phone(_label(p.name), _time(p.start, duration), _time(p.start + p.duration, duration))
        for p in entries
    ]
    phones = [p for p in phones if p.end > p.start]
    found = [Word(w.text.split("(")[0], w.start, w.end) for w in found if w.text != "sil"]
    return PhoneTiming(_merge(phones), "alignment", found), score


def _mean_spoken(timing: PhoneTiming) -> float:
    spoken = [p.end - p.start for p in timing.phones if p.label != SILENCE]
    return float(np.mean(spoken)) if spoken else float("inf")


def timings(audio: np.ndarray, rate: int = RATE, transcript: str | None = None) -> PhoneTiming:
    """See the module docstring."""
    recognised, rec_score = recognise(audio, rate)
    if transcript is None:
        return recognised
    words = normalise(transcript)
    why = None
    try:
        aligned, score = align(audio, rate, words)
    except AlignmentError as exc:
        why = str(exc)
    else:
        if score < MIN_SCORE_RATIO * rec_score:
            why = "the transcript does not match the audio"
        elif _mean_spoken(aligned) > MAX_MEAN_PHONE:
            why = "the transcript is too short for the speech"
        else:
            return aligned
    if not transcript.strip():
        why = "the transcript is empty"
    recognised.warnings.append(f"{why}: phones recognised from the audio instead")
    return recognised
