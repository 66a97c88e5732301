"""The one interface every speech backend implements.

Contract: a backend turns one :class:`Chunk` (consecutive pieces of one or more turns) into
mono float32 audio. Offline backends synthesise each line separately and report where each
line starts and ends (``line_bounds``); others return ``None`` there and the renderer
estimates the boundaries. A backend must never read nonverbal cues out as words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

import numpy as np

from reelforge.voice.script import Piece, VoiceSpec


@dataclass(frozen=True)
class Line:
    """One turn's share of a chunk."""

    turn: int
    speaker: str
    pieces: tuple[Piece, ...]

    def dia_text(self) -> str:
        """The line as Dia reads it: speaker tag, words and cues in parentheses."""
        body = " ".join(p.text if p.kind == "text" else f"({p.text})" for p in self.pieces)
        return f"[{self.speaker}] {body}"


@dataclass(frozen=True)
class Chunk:
    index: int
    lines: tuple[Line, ...]

    def dia_text(self) -> str:
        return " ".join(line.dia_text() for line in self.lines)


@dataclass
class Synthesis:
    audio: np.ndarray  # mono float32 in [-1, 1]
    sample_rate: int
    line_bounds: list[tuple[float, float]] | None = None  # seconds, one per line
    model: str = ""
    cost: dict | None = None  # what a hosted API reported for the call
    extra: dict = field(default_factory=dict)


class Backend(Protocol):
    name: str
    uses_prompts: bool  # conditions on voice prompts: each speaker gets a reference or an anchor
    concurrency: int  # chunks it can synthesise at once (threads or requests in flight)
    params: Mapping[str, object]  # sampling parameters; part of the cache key

    @property
    def model(self) -> str:
        """Identifies the model/voice set; part of the cache key."""
        ...

    def synthesize(
        self,
        chunk: Chunk,
        voices: dict[str, VoiceSpec],
        prompts: dict[str, tuple[np.ndarray, int, str]],
    ) -> Synthesis:
        """Speak ``chunk``. ``prompts`` maps a speaker to (audio, rate, transcript) to
        condition on, for backends that clone voices."""
        ...


class BackendDefaults:
    """What a backend is unless it says otherwise: no prompts, one chunk at a time, no
    sampling parameters."""

    uses_prompts: bool = False
    concurrency: int = 1
    params: Mapping[str, object] = MappingProxyType({})


def silence(seconds: float, rate: int) -> np.ndarray:
    return np.zeros(max(0, round(seconds * rate)), dtype=np.float32)


CUE_PAUSE = 0.35  # seconds of silence standing in for a nonverbal cue
LINE_PAUSE = 0.3  # between turns inside a chunk
