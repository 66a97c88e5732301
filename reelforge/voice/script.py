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

Contract: :func:`parse` returns a :class:`Script` or raises :class:`ScriptError`, whose
message names the file, line and column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from reelforge.errors import InputError

NONVERBAL_TAGS = (
    "laughs", "clears throat", "sighs", "gasps", "coughs", "singing", "sings", "mumbles",
    "beep", "groans", "sniffs", "claps", "screams", "inhales", "exhales", "applause", "burps",
    "humming", "sneezes", "chuckle", "whistles",
)  # fmt: skip
SPEAKER_TAG = re.compile(r"\[(S[1-9][0-9]?)\]")
CUE = re.compile(r"\(([^()]{1,40})\)")


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

    @property
    def spoken_text(self) -> str:
        """The words only, without nonverbal cues."""
        return " ".join(p.text for p in self.pieces if p.kind == "text").strip()


@dataclass
class Script:
    speakers: dict[str, VoiceSpec]
    turns: list[Turn]
    warnings: list[str]
    path: Path | None = None

    @property
    def speaker_ids(self) -> list[str]:
        return sorted({t.speaker for t in self.turns}, key=lambda s: int(s[1:]))


def split_pieces(text: str) -> tuple[list[Piece], list[str]]:
    """Split a turn's text into words and cues; unknown cues are reported by name."""
    pieces: list[Piece] = []
    unknown: list[str] = []
    pos = 0
    for m in CUE.finditer(text):
        before = text[pos : m.start()].strip()
        if before:
            pieces.append(Piece("text", before))
        name = m.group(1).strip().lower()
        if name not in NONVERBAL_TAGS:
            unknown.append(name)
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
    warnings: list[str] = []
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
        if blank_run and turns:
            scene += 1
        blank_run = False
        col = len(raw) - len(raw.lstrip()) + 1
        m = SPEAKER_TAG.match(stripped)
        if m is None:
            if current is None:
                raise ScriptError(path, line_no, col, "turn has no speaker tag such as [S1]")
            current.text = f"{current.text} {stripped}".strip()
            continue
        # Several turns may share a line: "[S1] Hi. [S2] Hello."
        parts = SPEAKER_TAG.split(stripped)
        for i in range(1, len(parts), 2):
            current = Turn(len(turns), scene, parts[i], parts[i + 1].strip(), line_no)
            turns.append(current)
    if not turns:
        raise ScriptError(path, max(1, body_start + 1), 1, "script has no turns")
    for turn in turns:
        turn.pieces, unknown = split_pieces(turn.text)
        for name in unknown:
            warnings.append(f"line {turn.line}: unknown nonverbal tag ({name}) passed through")
        if not turn.pieces:
            raise ScriptError(path, turn.line, 1, f"[{turn.speaker}] turn is empty")
    speakers = _speakers(meta, turns, path)
    return Script(
        speakers=speakers, turns=turns, warnings=warnings, path=Path(path) if path else None
    )


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
        raise InputError("script is empty", path=path)
    return parse(text, path)
