"""``espeak``: eSpeak NG through ctypes, the offline voice that always works.

libespeak-ng and its data come from the ``espeakng-loader`` wheel (no system package). Each
speaker gets a distinct voice (language variant and pitch); word timings come from
espeak's word events, phone timings from its phoneme events (IPA names, as ARPAbet labels
in ``extra["phones"]``: ``[label, start, end]`` in seconds of the chunk, the lip-sync step's
input). Nonverbal cues become short pauses.
"""

from __future__ import annotations

import ctypes
import threading
from functools import cache

import numpy as np

from reelforge.errors import ReelforgeError
from reelforge.voice.backends.base import (
    CUE_PAUSE,
    LINE_PAUSE,
    BackendDefaults,
    Chunk,
    Synthesis,
    silence,
)
from reelforge.voice.script import VoiceSpec

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_DONT_EXIT = 0x8000
INITIALIZE_PHONEME_EVENTS, INITIALIZE_PHONEME_IPA = 0x0001, 0x0002
CHARS_UTF8 = 1
EVENT_WORD = 1
EVENT_END, EVENT_PHONEME = 5, 7
PARAM_RATE, PARAM_PITCH = 1, 3
# A distinct default voice per speaker: (espeak voice name, pitch 0-100).
SPEAKER_VOICES = [("en-us", 45), ("en-us+f3", 60), ("en-gb", 40), ("en-gb+f2", 65),
                  ("en-us+m3", 35), ("en-us+f4", 70)]  # fmt: skip


class EspeakEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(EspeakEvent)
)


class _Engine:
    """The process-wide libespeak-ng instance (the library keeps global state)."""

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data = espeakng_loader.get_data_path().encode()
        self.lib.espeak_Initialize.restype = ctypes.c_int
        options = INITIALIZE_DONT_EXIT | INITIALIZE_PHONEME_EVENTS | INITIALIZE_PHONEME_IPA
        rate = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data, options)
        if rate <= 0:
            raise ReelforgeError("espeak-ng failed to initialise")
        self.sample_rate = rate
        self.lock = threading.Lock()
        self._samples: list[np.ndarray] = []
        self._words: list[tuple[int, int, int]] = []
        self._phones: list[tuple[int, str]] = []
        self._callback = CALLBACK(self._on_audio)
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]  # fmt: skip

    def _on_audio(self, wav, count, events) -> int:
        if count > 0:
            self._samples.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        i = 0
        while events[i].type != 0:
            if events[i].type == EVENT_WORD:
                e = events[i]
                self._words.append((e.audio_position, e.text_position, e.length))
            elif events[i].type == EVENT_PHONEME:
                e = events[i]
                self._phones.append((e.audio_position, e.id.decode("utf-8", "replace")))
            i += 1
        return 0

    def speak(
        self, text: str, voice: str, pitch: int, rate_wpm: int
    ) -> tuple[np.ndarray, list, list]:
        """The audio, the word events (ms, text position, length) and the phoneme events
        (ms, IPA name) of ``text``."""
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ReelforgeError(f"espeak-ng has no voice {voice!r}")
            self.lib.espeak_SetParameter(PARAM_PITCH, pitch, 0)
            self.lib.espeak_SetParameter(PARAM_RATE, rate_wpm, 0)
            self._samples, self._words, self._phones = [], [], []
            data = text.encode("utf-8")
            self.lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, CHARS_UTF8, None, None)
            self.lib.espeak_Synchronize()
            pcm = np.concatenate(self._samples) if self._samples else np.zeros(0, np.int16)
            return pcm.astype(np.float32) / 32768.0, list(self._words), list(self._phones)


@cache
def engine() -> _Engine:
    return _Engine()


class EspeakBackend(BackendDefaults):
    name = "espeak"

    def __init__(self, rate_wpm: int = 165, **_) -> None:
        self.rate_wpm = rate_wpm

    @property
    def model(self) -> str:
        return f"espeak-ng/{self.rate_wpm}wpm"

    def voice_for(self, speaker: str, spec: VoiceSpec | None) -> tuple[str, int]:
        index = (int(speaker[1:]) - 1) % len(SPEAKER_VOICES)
        default_voice, pitch = SPEAKER_VOICES[index]
        return (spec.voice if spec and spec.voice else default_voice), pitch

    def synthesize(self, chunk: Chunk, voices, prompts=None) -> Synthesis:
        eng = engine()
        rate = eng.sample_rate
        parts: list[np.ndarray] = []
        bounds: list[tuple[float, float]] = []
        words: list[dict] = []
        phones: list[list] = []
        cursor = 0
        for n, line in enumerate(chunk.lines):
            if n:
                parts.append(silence(LINE_PAUSE, rate))
                cursor += parts[-1].size
            start = cursor
            voice, pitch = self.voice_for(line.speaker, voices.get(line.speaker))
            for piece in line.pieces:
                if piece.kind == "cue":
                    audio = silence(CUE_PAUSE, rate)
                else:
                    audio, events, phone_events = eng.speak(piece.text, voice, pitch, self.rate_wpm)
                    phones.extend(_phones(phone_events, cursor / rate, audio.size / rate))
                    for ms, pos, length in events:
                        words.append({
                            "turn": line.turn,
                            "word": piece.text[max(0, pos - 1) : max(0, pos - 1) + length],
                            "start": (cursor / rate) + ms / 1000,
                        })  # fmt: skip
                parts.append(audio)
                cursor += audio.size
            bounds.append((start / rate, cursor / rate))
        audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        return Synthesis(audio, rate, bounds, self.model, extra={"words": words, "phones": phones})


def _phones(events: list[tuple[int, str]], offset: float, duration: float) -> list[list]:
    """``[label, start, end]`` per phone from phoneme events (each ends where the next
    begins, the last at the audio's end); an event with no name lengthens the phone before
    it; pauses and unknown symbols become ``SIL``."""
    from reelforge.voice.phones import SILENCE, from_ipa

    out: list[list] = []
    for n, (ms, name) in enumerate(events):
        start = ms / 1000
        end = events[n + 1][0] / 1000 if n + 1 < len(events) else duration
        if end <= start:
            continue
        if not name.strip() and out:
            out[-1][2] = round(offset + end, 3)
            continue
        labels = from_ipa(name) or [SILENCE]
        step = (end - start) / len(labels)  # a diphthong with r: shared evenly
        for k, label in enumerate(labels):
            a, b = offset + start + k * step, offset + start + (k + 1) * step
            if out and label == SILENCE and out[-1][0] == SILENCE:
                out[-1][2] = round(b, 3)
            else:
                out.append([label, round(a, 3), round(b, 3)])
    return out
