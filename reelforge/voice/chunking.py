"""Split a script into synthesis chunks.

Contract: chunks never cross a scene. With ``per_turn`` (offline voices, which time every
line exactly), each turn is one chunk. Otherwise consecutive turns are packed until the
estimated speech reaches ``min_seconds`` without passing ``max_seconds`` (Dia sounds best
with 5-20 s per call), and a turn longer than ``max_seconds`` is split at sentence ends.
"""

from __future__ import annotations

import re

from reelforge.voice.backends.base import Chunk, Line
from reelforge.voice.script import Piece, Script, Turn

WORDS_PER_SECOND = 2.6
CUE_SECONDS = 0.6
SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


def estimate_seconds(pieces: tuple[Piece, ...] | list[Piece]) -> float:
    words = sum(len(p.text.split()) for p in pieces if p.kind == "text")
    cues = sum(1 for p in pieces if p.kind == "cue")
    return words / WORDS_PER_SECOND + cues * CUE_SECONDS


def _sentences(turn: Turn) -> list[list[Piece]]:
    """The turn's pieces grouped into sentences (cues stay with the sentence they follow)."""
    groups: list[list[Piece]] = [[]]
    for piece in turn.pieces:
        if piece.kind == "cue":
            groups[-1].append(piece)
            continue
        parts = [p for p in SENTENCE_END.split(piece.text) if p.strip()]
        for i, sentence in enumerate(parts):
            if i and groups[-1]:
                groups.append([])
            groups[-1].append(Piece("text", sentence.strip()))
    return [g for g in groups if g]


def _turn_lines(turn: Turn, max_seconds: float) -> list[Line]:
    if estimate_seconds(turn.pieces) <= max_seconds:
        return [Line(turn.index, turn.speaker, tuple(turn.pieces))]
    lines: list[Line] = []
    current: list[Piece] = []
    for sentence in _sentences(turn):
        if current and estimate_seconds(current + sentence) > max_seconds:
            lines.append(Line(turn.index, turn.speaker, tuple(current)))
            current = []
        current += sentence
    if current:
        lines.append(Line(turn.index, turn.speaker, tuple(current)))
    return lines


def make_chunks(
    script: Script, *, per_turn: bool, min_seconds: float = 5.0, max_seconds: float = 20.0
) -> list[Chunk]:
    chunks: list[list[Line]] = []
    scenes: list[int] = []
    for turn in script.turns:
        for line in _turn_lines(turn, max_seconds):
            fits = (
                not per_turn
                and chunks
                and scenes[-1] == turn.scene
                and estimate_seconds([p for ln in chunks[-1] for p in ln.pieces]) < min_seconds
                and estimate_seconds(
                    [p for ln in chunks[-1] for p in ln.pieces] + list(line.pieces)
                )
                <= max_seconds
            )
            if fits:
                chunks[-1].append(line)
            else:
                chunks.append([line])
                scenes.append(turn.scene)
    return [Chunk(i, tuple(lines)) for i, lines in enumerate(chunks)]
