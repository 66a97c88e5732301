"""The dialogue script format.

A script is optional YAML front matter between ``---`` lines, then scenes separated by blank
lines. Each turn starts with a speaker tag ``[S1]``, ``[S2]`` ... and may continue on the
following lines. Parenthesised cues such as ``(laughs)`` are nonverbal; Dia's tags are known,
others are kept with a warning. Front matter maps speakers to voices::

    ---
    speakers:
      S1: {voice: en-us, seed: 7}
      S2: {reference: clips/anna.wav, transcript: "What the clip says.", seed: 3}
    ---
    [S1] Hello there. (laughs) It has been a while.
    [S2] Too long!

Any other bracketed tag (``[X]``, ``[Narrator]``, ``[s1]``) is a warning and is left out:
it is neither spoken nor subtitled, and the words around it stay in the current turn (a line
that opens with one continues the current turn).

Contract: :func:`parse` returns a :class:`Script` or raises :class:`ScriptError`, whose
message names the file, line and column; a script with no words to speak (empty, only
comments or front matter, only cues) is refused with an :class:`~reelforge.errors.InputError`
that says ``nothing to speak``. Warnings name ``file:line:column`` too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from reelforge.errors import InputError

NONVERBAL_TAGS = (
    "laughs", "clears throat", "sighs", "gasps", "coughs", "singing", "sings", "mumbles",
    "beep", "groans", "sniffs", "claps", "screams", "inhales", "exhales", "applause", "burps",
    "humming", "sneezes", "chuckle", "whistles",
)  # fmt: skip
SPEAKER_TAG = re.compile(r"\[(S[1-9][0-9]?)\]")
BRACKET_TAG = re.compile(r"\[[^\[\]]{0,40}\]")  # a speaker tag or a tag we leave out
CUE = re.compile(r"\(([^()]{1,40})\)")
WORD = re.compile(r"\w")


class ScriptError(InputError):
    """A script that cannot be parsed; the message carries ``file:line:column``."""

    def __init__(self, path: str | Path | None, line: int, column: int, message: str) -> None:
        where = f"{path or '<script>'}:{line}:{column}"
        super().__init__(f"{where}: {message}")
        self.line, self.column = line, column


class VoiceSpec(BaseModel):
    """How one speaker should sound: a backend voice, or a reference clip to clone."""

    model_config = ConfigDict(extra="forbid")

    voice: str | None = None
    reference: Path | None = None
    transcript: str | None = None
    seed: int | None = None


@dataclass(frozen=True)
class Piece:
    """A run of words or one nonverbal cue inside a turn."""

    kind: str  # "text" or "cue"
    text: str


@dataclass
class Turn:
    index: int
    scene: int
    speaker: str
    text: str
    line: int
    pieces: list[Piece] = field(default_factory=list)
    column: int = 1  # of the speaker tag
    where: list[tuple[int, int]] = field(default_factory=list, repr=False)
    """(line, column) in the script of each character of ``text``."""

    @property
    def spoken_text(self) -> str:
        """The words only, without nonverbal cues."""
        return " ".join(p.text for p in self.pieces if p.kind == "text").strip()

    @property
    def has_words(self) -> bool:
        return any(p.kind == "text" and WORD.search(p.text) for p in self.pieces)

    def append(self, text: str, line: int, column: int) -> None:
        """Add ``text`` (its first character at ``column`` of ``line``) to the turn, with
        every run of whitespace, and the break between two additions, read as one space."""
        if self.text and not self.text.endswith(" "):
            self.text += " "
            self.where.append((line, column))
        for offset, char in enumerate(text):
            if char.isspace():
                if not self.text or self.text.endswith(" "):
                    continue
                char = " "
            self.text += char
            self.where.append((line, column + offset))

    def finish(self) -> None:
        """Drop trailing whitespace once every line is in."""
        stripped = self.text.rstrip()
        del self.where[len(stripped) :]
        self.text = stripped


@dataclass
class Script:
    speakers: dict[str, VoiceSpec]
    turns: list[Turn]
    warnings: list[str]
    path: Path | None = None

    @property
    def speaker_ids(self) -> list[str]:
        return sorted({t.speaker for t in self.turns}, key=lambda s: int(s[1:]))


def split_pieces(text: str) -> tuple[list[Piece], list[tuple[str, int]]]:
    """Split a turn's text into words and cues; unknown cues are reported by name and by
    the offset of their ``(`` in ``text``."""
    pieces: list[Piece] = []
    unknown: list[tuple[str, int]] = []
    pos = 0
    for m in CUE.finditer(text):
        before = text[pos : m.start()].strip()
        if before:
            pieces.append(Piece("text", before))
        name = m.group(1).strip().lower()
        if name not in NONVERBAL_TAGS:
            unknown.append((name, m.start()))
        pieces.append(Piece("cue", name))
        pos = m.end()
    rest = text[pos:].strip()
    if rest:
        pieces.append(Piece("text", rest))
    return pieces, unknown


def _front_matter(lines: list[str], path) -> tuple[dict, int]:
    if not lines or lines[0].strip() != "---":
        return {}, 0
    for end in range(1, len(lines)):
        if lines[end].strip() == "---":
            try:
                data = yaml.safe_load("\n".join(lines[1:end])) or {}
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                line = (mark.line + 2) if mark else 2
                col = (mark.column + 1) if mark else 1
                raise ScriptError(
                    path,
                    line,
                    col,
                    f"front matter is not valid YAML ({getattr(exc, 'problem', None) or exc})",
                ) from None
            if not isinstance(data, dict):
                raise ScriptError(path, 2, 1, "front matter must be a mapping")
            return data, end + 1
    raise ScriptError(path, 1, 1, "front matter opened with --- is never closed")


def parse(text: str, path: str | Path | None = None) -> Script:
    """Parse script text; ``path`` is used in messages and to resolve reference clips."""
    lines = text.splitlines()
    meta, body_start = _front_matter(lines, path)
    turns: list[Turn] = []
    notes: list[tuple[int, int, str]] = []  # line, column, warning
    scene = 0
    current: Turn | None = None
    blank_run = True
    for number in range(body_start, len(lines)):
        raw = lines[number]
        line_no = number + 1
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            if not stripped and current is not None:
                current = None
                blank_run = True
            continue
        tags = list(BRACKET_TAG.finditer(raw))
        left_out = [m for m in tags if not SPEAKER_TAG.fullmatch(m.group())]
        for m in left_out:
            message = f"{m.group()} is not a speaker tag ([S1], [S2], ...): left out"
            notes.append((line_no, m.start() + 1, message))
        if not BRACKET_TAG.sub("", raw).strip() and len(left_out) == len(tags):
            continue  # only tags we leave out: the line says nothing
        if blank_run and turns:
            scene += 1
        blank_run = False
        # Text before a speaker tag continues the current turn; several turns may share a
        # line: "[S1] Hi. [S2] Hello."
        pos, opener = 0, None
        for m in [*tags, None]:
            end = m.start() if m is not None else len(raw)
            chunk = raw[pos:end]
            if chunk.strip():
                if current is None:
                    _no_speaker(path, line_no, opener, pos + len(chunk) - len(chunk.lstrip()))
                current.append(chunk, line_no, pos + 1)
            if m is None:
                break
            pos = m.end()
            if SPEAKER_TAG.fullmatch(m.group()):
                current = Turn(len(turns), scene, m.group()[1:-1], "", line_no,
                               column=m.start() + 1)  # fmt: skip
                turns.append(current)
            elif current is None and opener is None:
                opener = m
    for turn in turns:
        turn.finish()
        turn.pieces, unknown = split_pieces(turn.text)
        for name, offset in unknown:
            at_line, at_column = turn.where[offset]
            notes.append((at_line, at_column, f"unknown nonverbal tag ({name}) passed through"))
    if not any(turn.has_words for turn in turns):
        why = "only nonverbal cues, no words" if turns else "no turns such as [S1] Hello."
        raise InputError(f"nothing to speak ({why})", path=path)
    for turn in turns:
        if not turn.pieces:
            raise ScriptError(path, turn.line, turn.column, f"[{turn.speaker}] turn is empty")
    speakers = _speakers(meta, turns, path)
    where = path or "<script>"
    warnings = [f"{where}:{line}:{column}: {message}" for line, column, message in sorted(notes)]
    return Script(
        speakers=speakers, turns=turns, warnings=warnings, path=Path(path) if path else None
    )


def _no_speaker(path, line: int, opener: re.Match | None, offset: int) -> NoReturn:
    """Raise for words that no speaker tag before them claims."""
    if opener is not None:
        raise ScriptError(path, line, opener.start() + 1,
                          f"{opener.group()} is not a speaker tag; turns start with [S1], "
                          "[S2], ...")  # fmt: skip
    raise ScriptError(path, line, offset + 1, "turn has no speaker tag such as [S1]")


def _speakers(meta: dict, turns: list[Turn], path) -> dict[str, VoiceSpec]:
    raw = meta.get("speakers") or {}
    if not isinstance(raw, dict):
        raise ScriptError(path, 2, 1, "front matter 'speakers' must map S1, S2 ... to voices")
    used = {t.speaker for t in turns}
    base = Path(path).parent if path else Path.cwd()
    specs: dict[str, VoiceSpec] = {}
    for name, value in raw.items():
        if name not in used:
            raise ScriptError(
                path,
                2,
                1,
                f"front matter names unknown speaker {name!r} "
                f"(the script uses {', '.join(sorted(used))})",
            )
        if isinstance(value, str):
            value = {"voice": value}
        try:
            spec = VoiceSpec.model_validate(value or {})
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ScriptError(path, 2, 1, f"speaker {name}: {where}: {err['msg']}") from None
        if spec.reference is not None:
            if not spec.reference.is_absolute():
                spec.reference = base / spec.reference
            if not spec.transcript:
                raise ScriptError(
                    path, 2, 1, f"speaker {name}: a reference clip needs its transcript"
                )
        specs[name] = spec
    for name in used:
        specs.setdefault(name, VoiceSpec())
    return specs


def load(path: str | Path) -> Script:
    """Read and parse a script file."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such script file" if not path.exists() else "is not a file", path=path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError("script is not UTF-8 text", path=path) from None
    if not text.strip():
        raise InputError("nothing to speak (the script is empty)", path=path)
    return parse(text, path)
