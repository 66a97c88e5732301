"""The story file: a title, its cast and its scenes, read into a checked :class:`Story`.

A story is YAML; paths in it are relative to the story file::

    title: The Lighthouse
    language: en
    size: 1280x720            # the picture every shot is fitted into (letterboxed)
    fps: 25
    cast:
      S1: {name: Keeper, face: faces/keeper.png, voice: {backend: piper}}
      S2: {name: Sailor, face: faces/sailor.jpg, voice: {backend: espeak, voice: en-us+f3},
           voices: {fr: {voice: fr+f3}}}   # per language, over voice
    talk: {backend: viseme}   # for everyone; a cast member's own talk: wins
    scenes:
      - script: scenes/01.txt
      - video: footage/harbour.mp4
        narration: scenes/02.txt
        mix: true             # keep the footage's own sound under the narration
      - script: scenes/03.txt
    publish: {codecs: [h264], preset: balanced}
    output: out/lighthouse

Contract: :func:`load` returns a :class:`Story` whose paths are absolute and exist, whose
scripts parse and name only cast members, and whose portraits hold a face; anything else is
a :class:`StoryError` (exit 2) whose message starts ``file:line:column`` (the story's, or a
scene script's for an unknown speaker). Nothing here writes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from reelforge.errors import InputError
from reelforge.voice.script import Script, ScriptError
from reelforge.voice.script import load as load_script

LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
SIZE = re.compile(r"^(\d{2,4})x(\d{2,4})$")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".avif", ".bmp", ".tif", ".tiff", ".gif"}


class StoryError(InputError):
    """A story that cannot be made; the message carries ``file:line:column``."""

    def __init__(self, path: str | Path, line: int, column: int, message: str) -> None:
        super().__init__(f"{path}:{line}:{column}: {message}")
        self.line, self.column = line, column


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VoiceChoice(_Strict):
    """A cast member's voice: every option the voice step has."""

    backend: str | None = None  # None: the voice step's default (Piper, else eSpeak NG)
    voice: str | None = None
    model: str | None = None
    reference: Path | None = None
    transcript: str | None = None
    seed: int | None = None


class TalkChoice(_Strict):
    """How a cast member's talking shots are made: the talk step's options."""

    backend: str = "viseme"
    model: str | None = None
    checkpoint: Path | None = None
    device: str = "cpu"
    motion: bool = True
    face_index: int = 0


class CastMember(_Strict):
    name: str | None = None  # shown in subtitles; default: the speaker id
    face: Path
    voice: VoiceChoice = Field(default_factory=VoiceChoice)
    voices: dict[str, VoiceChoice] = Field(default_factory=dict)  # per language, over voice
    talk: TalkChoice | None = None

    def voice_for(self, language: str) -> VoiceChoice:
        """``voice`` with this language's ``voices`` entry laid over it."""
        own = self.voices.get(language)
        if own is None:
            return self.voice
        return self.voice.model_copy(update=own.model_dump(exclude_unset=True))


class Scene(_Strict):
    """A dialogue scene (``script``) or footage (``video``, optionally with ``narration``
    replacing its sound, or laid over it with ``mix: true``). With several languages,
    ``script`` and ``narration`` map each language to its file."""

    script: Path | dict[str, Path] | None = None
    video: Path | None = None
    narration: Path | dict[str, Path] | None = None
    mix: bool = False


class Story(_Strict):
    title: str
    language: str = "en"
    languages: list[str] | None = None
    size: str = "1280x720"
    fps: int = Field(25, ge=10, le=60)
    cast: dict[str, CastMember]
    talk: TalkChoice = Field(default_factory=TalkChoice)
    scenes: list[Scene] = Field(min_length=1)
    publish: dict[str, Any] = Field(default_factory=dict)
    output: str | None = None
    lufs: float = Field(-16.0, ge=-40, le=-6)

    path: Path | None = Field(None, exclude=True)

    @field_validator("size")
    @classmethod
    def _size(cls, value: str) -> str:
        match = SIZE.match(value)
        if not match or int(match[1]) % 2 or int(match[2]) % 2:
            raise ValueError("must look like 1280x720 (even numbers)")
        return value

    @property
    def width(self) -> int:
        return int(self.size.split("x")[0])

    @property
    def height(self) -> int:
        return int(self.size.split("x")[1])

    @property
    def all_languages(self) -> list[str]:
        return self.languages or [self.language]

    def talk_for(self, speaker: str) -> TalkChoice:
        return self.cast[speaker].talk or self.talk

    def display_name(self, speaker: str) -> str:
        return self.cast[speaker].name or speaker


def _python(node: yaml.Node, marks: dict[tuple, tuple[int, int]], at: tuple) -> Any:
    """The value of a YAML node, recording each value's (line, column) under its path."""
    marks[at] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node))
            marks[(*at, key, "<key>")] = (key_node.start_mark.line + 1,
                                          key_node.start_mark.column + 1)  # fmt: skip
            out[key] = _python(value_node, marks, (*at, key))
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_python(v, marks, (*at, i)) for i, v in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))


class _Where:
    """Turns a path inside the story into ``file:line:column``."""

    def __init__(self, path: Path, marks: dict[tuple, tuple[int, int]]) -> None:
        self.path, self.marks = path, marks

    def error(self, at: tuple, message: str) -> StoryError:
        for n in range(len(at), -1, -1):
            if at[:n] in self.marks:
                line, column = self.marks[at[:n]]
                return StoryError(self.path, line, column, message)
        return StoryError(self.path, 1, 1, message)


def _parse(path: Path) -> tuple[dict, _Where]:
    if not path.is_file():
        raise InputError("no such story file" if not path.exists() else "is not a file", path=path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError("story is not UTF-8 text", path=path) from None
    marks: dict[tuple, tuple[int, int]] = {}
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise StoryError(path, line, column, f"not valid YAML ({problem})") from None
    if node is None:
        raise StoryError(path, 1, 1, "the story is empty")
    data = _python(node, marks, ())
    if not isinstance(data, dict):
        raise StoryError(path, 1, 1, "a story is a mapping (title, cast, scenes, ...)")
    return data, _Where(path, marks)


def _file(where: _Where, jail: Path | None, base: Path, value: Path, at: tuple,
          what: str) -> Path:  # fmt: skip
    """The file ``value`` names (relative to ``base``), checked to exist, and to lie inside
    ``jail`` when there is one (symlinks and ``..`` resolved) before anything reads it."""
    full = value if value.is_absolute() else base / value
    if jail is not None:
        real, root = os.path.realpath(full), os.path.realpath(jail)
        if not real.startswith(root + os.sep):
            raise where.error(at, f"{what} {value}: outside the story's folder")
    if not full.is_file():
        problem = "no such file" if not full.exists() else "is not a file"
        raise where.error(at, f"{what} {value}: {problem}")
    return full.resolve()


FaceCheck = Callable[[Path, int], None]


def check_face(path: Path, face_index: int) -> None:
    """The talk step's own check: a portrait it can animate (raises InputError)."""
    from reelforge.lipsync.talk import check_portrait

    check_portrait(path, face_index)


def _check_face(where: _Where, path: Path, at: tuple, face_index: int,
                check: FaceCheck) -> None:  # fmt: skip
    """A portrait must hold a face the talk step can animate (read through the safe image
    reader, so bombs and tiny pictures are refused too)."""
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return  # a video of the person: the talk step checks its frames
    try:
        check(path, face_index)
    except InputError as exc:
        raise where.error(at, f"face {path.name}: {exc.reason}") from None


def _scripts(scene: Scene, field: str, languages: list[str]) -> dict[str, Path] | None:
    value = getattr(scene, field)
    if value is None:
        return None
    if isinstance(value, dict):
        return value
    return {languages[0]: value}


def load(path: str | Path, check: FaceCheck = check_face, *, confined: bool = False) -> Story:
    """Read, check and resolve a story file (see the module's contract); ``check`` checks
    each portrait (the pipeline passes one that remembers portraits it checked before);
    ``confined``: every file the story names must lie in the story's folder (a story sent
    to a service), refused before it is read."""
    path = Path(path).absolute()
    jail = path.parent if confined else None
    data, where = _parse(path)
    try:
        story = Story.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if not isinstance(p, str) or p not in (
            "str", "dict[str,Path]", "function-after[_size(), str]"))  # fmt: skip
        field = ".".join(str(p) for p in loc) or "story"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            raise where.error((*loc, "<key>"), f"unknown field {field!r}") from None
        if err["type"] == "missing":
            raise where.error(loc[:-1], f"{field} is missing") from None
        raise where.error(loc, f"{field}: {message}") from None
    story.path = path
    base = path.parent
    languages = story.all_languages
    for i, lang in enumerate(languages):
        if not LANGUAGE.match(lang):
            at = ("languages", i) if story.languages else ("language",)
            raise where.error(at, f"{lang!r} is not a language code such as en or pt-BR")
    for speaker, member in story.cast.items():
        if not re.fullmatch(r"S[1-9][0-9]?", speaker):
            raise where.error(
                ("cast", speaker, "<key>"),
                f"cast members are S1, S2, ... as in the scripts, not {speaker!r}",
            )
        member.face = _file(where, jail, base, member.face, ("cast", speaker, "face"), "face")
        for lang in member.voices:
            if lang not in languages:
                raise where.error(("cast", speaker, "voices", lang, "<key>"),
                                  f"{lang!r} is not one of the story's languages "
                                  f"({', '.join(languages)})")  # fmt: skip
        for at, choice in [(("cast", speaker, "voice"), member.voice),
                           *((("cast", speaker, "voices", lang), v)
                             for lang, v in member.voices.items())]:  # fmt: skip
            if choice.reference is not None:
                at = (*at, "reference")
                choice.reference = _file(where, jail, base, choice.reference, at, "reference")
        for lang in languages:
            if (v := member.voice_for(lang)).reference is not None and not v.transcript:
                at = ("cast", speaker, *(("voices", lang) if lang in member.voices else ("voice",)))
                raise where.error(at, "a reference clip needs its transcript")
        talk = story.talk_for(speaker)
        if talk.checkpoint is not None:
            at = ("cast", speaker, "talk", "checkpoint") if member.talk else ("talk", "checkpoint")
            talk.checkpoint = _file(where, jail, base, talk.checkpoint, at, "checkpoint")
        _check_face(where, member.face, ("cast", speaker, "face"), talk.face_index, check)
    for n, scene in enumerate(story.scenes):
        at = ("scenes", n)
        if scene.script is None and scene.video is None:
            raise where.error(at, "a scene needs a script (dialogue) or a video (footage)")
        if scene.script is not None and scene.video is not None:
            raise where.error(at, "a scene is a script or a video, not both (use narration:)")
        if scene.narration is not None and scene.video is None:
            raise where.error((*at, "narration"), "narration goes with a video scene")
        if scene.video is not None:
            scene.video = _file(where, jail, base, scene.video, (*at, "video"), "video")
        for field in ("script", "narration"):
            files = _scripts(scene, field, languages)
            if files is None:
                continue
            missing = [lang for lang in languages if lang not in files]
            extra = [lang for lang in files if lang not in languages]
            if missing or extra:
                raise where.error((*at, field), f"{field} needs one file per language "
                                  f"({', '.join(languages)})")  # fmt: skip
            resolved = {}
            for lang, file in files.items():
                key = (*at, field, lang) if isinstance(getattr(scene, field), dict) else (
                    *at, field)  # fmt: skip
                resolved[lang] = _file(where, jail, base, Path(file), key, field)
                _check_speakers(story, load_script_at(where, key, resolved[lang]))
            setattr(scene, field, resolved)
    return story


def load_script_at(where: _Where, at: tuple, path: Path) -> Script:
    """A scene's script, its errors kept at their own file:line:column."""
    try:
        return load_script(path)
    except ScriptError:
        raise
    except InputError as exc:
        raise where.error(at, f"{path.name}: {exc.reason}") from None


def _check_speakers(story: Story, script: Script) -> None:
    for turn in script.turns:
        if turn.speaker not in story.cast:
            cast = ", ".join(sorted(story.cast)) or "none"
            raise ScriptError(script.path, turn.line, turn.column,
                              f"[{turn.speaker}] is not in the story's cast ({cast})")  # fmt: skip
