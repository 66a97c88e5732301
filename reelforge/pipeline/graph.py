"""A story made into published streams: the steps, in order, each cached by content.

Contract: :func:`make` loads a story (:mod:`reelforge.pipeline.story`), runs its steps
through a :class:`~reelforge.pipeline.runner.Pipeline` (which skips every step whose key it
has made before) and puts the result at the output in one rename: a stream folder, or one
per language (``OUT/en/``, ``OUT/fr/``) when the story has several, with ``make.json``
listing every step with its key, ``done`` or ``cached`` and its seconds. Per language:

1. each turn of each dialogue scene is voiced on its own (``voice-turn``: the speaker's
   voice from the cast, the story's loudness), so an edited line re-voices that line only;
2. each turn becomes a talking shot of its speaker (``talk-shot``), holding the pause that
   follows it (0.35 s between turns, 0.8 s after a scene's last), so the cut to the next
   speaker falls on the turn boundary;
3. footage scenes keep their picture; a narration's turns are voiced the same way and
   replace the footage's sound (or lie over it, ducked by 14 dB, with ``mix: true``); a
   narration longer than its footage holds the last frame;
4. ``assemble`` joins shots and footage frame-accurately in the story's picture size and
   frame rate, lays the sound out sample-accurately and brings the whole program to the
   loudness target (-16 LUFS by default, true peak under -1 dBTP), and times every
   language's subtitles at the turns of this language's program;
5. ``publish-stream`` publishes the program with every language's subtitles.

Nothing half-made is ever visible at the output; a run killed at any point and run again
continues from its last finished step. The steps take hosted-API keys and the voice cache
from the ``config`` given (:func:`reelforge.pipeline.steps.using`), never from their options.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from reelforge.errors import InputError
from reelforge.outputs import MAKE, output_folder
from reelforge.pipeline.spec import StepSpec
from reelforge.pipeline.story import Story, load
from reelforge.storage import is_s3, parse_s3
from reelforge.voice.script import Script
from reelforge.voice.script import load as load_script

if TYPE_CHECKING:
    from reelforge.config import Config

GAP_TURN = 0.35  # silence after a turn, before the next speaker's
GAP_SCENE = 0.8  # after a scene's last turn
MAKE_JSON = "make.json"
PUBLISH_FIELDS = {"codecs", "preset", "segment_duration", "start_segments",
                  "audio_bitrate_kbps", "quality", "poster", "thumbnails", "fallback",
                  "per_title", "target_vmaf", "rungs"}  # fmt: skip
VERSIONS = {
    "face-check": "1",
    "voice-turn": "1",
    "talk-shot": "1",
    "assemble": "2",
    "publish-stream": "2",
}


class MakeReport(BaseModel):
    story: str
    output: str
    title: str
    languages: list[str]
    streams: dict[str, str]  # language -> folder, relative to the output
    duration: float
    steps: list[dict]
    seconds: float


def _spec(name: str, inputs: dict[str, Path], options: dict[str, Any]) -> StepSpec:
    return StepSpec(name=name, version=VERSIONS[name], inputs=inputs, options=options)


def _voice_options(story: Story, speaker: str, text: str,
                   lang: str) -> tuple[dict, dict[str, Path]]:  # fmt: skip
    from reelforge.voice.backends import default_name

    choice = story.cast[speaker].voice_for(lang)
    options = {"speaker": speaker, "text": text, "backend": choice.backend or default_name(),
               "voice": choice.voice, "model": choice.model, "seed": choice.seed,
               "transcript": choice.transcript, "lufs": story.lufs}  # fmt: skip
    inputs = {"reference": choice.reference} if choice.reference is not None else {}
    return options, inputs


def _talk_options(story: Story, speaker: str, tail: float) -> dict:
    talk = story.talk_for(speaker)
    face = story.cast[speaker].face
    return {"backend": talk.backend, "model": talk.model, "device": talk.device,
            "checkpoint": str(talk.checkpoint) if talk.checkpoint else None,
            "motion": talk.motion, "face_index": talk.face_index, "fps": story.fps,
            "tail": round(tail, 4), "video": face.suffix.lower() not in _IMAGES}  # fmt: skip


_IMAGES = {".png", ".jpg", ".jpeg", ".webp", ".avif", ".bmp", ".tif", ".tiff", ".gif"}


def publish_options(story: Story) -> dict[str, Any]:
    """The story's publish options with every default filled in (part of the step key)."""
    from reelforge.video.publish import PublishOptions, validate_options

    given = dict(story.publish)
    unknown = sorted(set(given) - PUBLISH_FIELDS)
    if unknown:
        raise InputError(f"publish: unknown option {unknown[0]!r} (known: "
                         f"{', '.join(sorted(PUBLISH_FIELDS))})", path=story.path)  # fmt: skip
    try:
        opts = PublishOptions(**publish_fields(given))
    except (TypeError, ValueError) as exc:
        raise InputError(f"publish: {exc}", path=story.path) from None
    validate_options(opts)
    resolved = {f.name: getattr(opts, f.name) for f in dataclasses.fields(opts)
                if f.name in PUBLISH_FIELDS}  # fmt: skip
    if resolved["rungs"] is not None:
        resolved["rungs"] = [r.model_dump(exclude_none=True) for r in resolved["rungs"]]
    return json.loads(json.dumps(resolved))


def publish_fields(given: dict[str, Any]) -> dict[str, Any]:
    """Publish's options as a story (or a step's JSON) writes them, as PublishOptions takes
    them: tuples for lists, rungs as :class:`~reelforge.video.ladder.Rung`."""
    from reelforge.video.ladder import Rung

    out = dict(given)
    for name in ("codecs", "start_segments"):
        if isinstance(out.get(name), list):
            out[name] = tuple(out[name])
    if isinstance(out.get("rungs"), list):
        out["rungs"] = [Rung(**r) if isinstance(r, dict) else r for r in out["rungs"]]
        out.setdefault("ladder_name", "story")
    return out


def _scripts(story: Story, field: str, index: int) -> dict[str, Script]:
    """A scene's script (or narration) per language, checked to have the same turns."""
    files: dict[str, Path] = getattr(story.scenes[index], field)
    scripts = {lang: load_script(files[lang]) for lang in story.all_languages}
    first = story.all_languages[0]
    shape = [t.speaker for t in scripts[first].turns]
    for lang, script in scripts.items():
        if [t.speaker for t in script.turns] != shape:
            raise InputError(f"scene {index + 1}: its {lang} {field} has other turns than the "
                             f"{first} one (speakers {', '.join(shape)}); translations keep "
                             "the turns", path=files[lang])  # fmt: skip
    return scripts


def make(story_path: str | Path, output: str | Path | None, pipeline, *,
         config: Config | None = None) -> MakeReport:  # fmt: skip
    """Make the story at ``story_path`` into ``output`` (default: the story's own) with
    ``pipeline`` (a :class:`~reelforge.pipeline.runner.Pipeline`); the steps run with the
    settings in ``config`` (default: none, so no hosted API keys)."""
    from reelforge.pipeline import steps

    with steps.using(config) if config is not None else contextlib.nullcontext():
        return _make(story_path, output, pipeline)


def _make(story_path: str | Path, output: str | Path | None, pipeline) -> MakeReport:
    """Make into a folder; for ``s3://BUCKET/PREFIX``, into a scratch folder that is then
    uploaded (playlists and manifests after what they name) and removed however it ends."""
    story = load(story_path, check=lambda face, index: _checked_face(pipeline, face, index))
    assert story.path is not None
    target = _output(story, output)
    if not is_s3(target):
        return _make_into(story, target, str(target), pipeline)
    from reelforge.delivery.deliver import deliver

    scratch = Path(tempfile.mkdtemp(prefix="reelforge-make-"))
    try:
        report = _make_into(story, scratch / "stream", str(target), pipeline)
        deliver(scratch / "stream", str(target))
        return report
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _make_into(story: Story, out: Path, shown: str, pipeline) -> MakeReport:
    """Make ``story`` into the folder ``out``; ``shown``: the output the report names."""
    started = time.monotonic()
    publish = publish_options(story)
    languages = story.all_languages
    dialogue = {n: _scripts(story, "script", n) for n, s in enumerate(story.scenes) if s.script}
    narration = {n: _scripts(story, "narration", n) for n, s in enumerate(story.scenes)
                 if s.narration}  # fmt: skip
    inputs_used = [story.path, *(m.face for m in story.cast.values()),
                   *(s.video for s in story.scenes if s.video)]  # fmt: skip
    with output_folder(out, MAKE, force=True, inputs=inputs_used) as tmp:
        programs = {}
        for lang in languages:
            programs[lang] = _program(story, lang, dialogue, narration, pipeline)
        streams = {}
        for lang in languages:
            subtitles = {f"subtitles-{other}": programs[lang].file(f"subtitles-{other}.vtt")
                         for other in languages}  # fmt: skip
            result = pipeline.run(_spec("publish-stream",
                                        {"program": programs[lang].file("program.mkv"),
                                         **subtitles}, {"publish": publish}))  # fmt: skip
            folder = "." if len(languages) == 1 else lang
            _link_tree(result.file("stream"), tmp if folder == "." else tmp / folder)
            streams[lang] = folder
        report = MakeReport(
            story=str(story.path), output=shown, title=story.title, languages=languages,
            streams=streams, duration=programs[languages[0]].report["duration"],
            steps=pipeline.outcomes(), seconds=round(time.monotonic() - started, 3),
        )  # fmt: skip
        (tmp / MAKE_JSON).write_text(report.model_dump_json(indent=2), encoding="utf-8")
    return report


def _checked_face(pipeline, face: Path, index: int) -> None:
    """The portrait check as a cached step: a portrait checked before is not read again
    (a failed check is never cached, so its error comes back every time)."""
    pipeline.run(_spec("face-check", {"face": face}, {"face_index": index}))


def _output(story: Story, output: str | Path | None) -> Path | str:
    """The output folder, or an ``s3://BUCKET/PREFIX`` location as a string (checked)."""
    given = output if output is not None else story.output
    if given is None:
        raise InputError("no output: give -o OUT or 'output:' in the story", path=story.path)
    if is_s3(given):
        parse_s3(str(given))  # a malformed location is refused before any step runs
        return str(given)
    if output is not None:
        return Path(output)
    given = Path(story.output)
    return given if given.is_absolute() else story.path.parent / given


def _program(story: Story, lang: str, dialogue: dict, narration: dict, pipeline):
    """The ``assemble`` step's result for one language (voicing and shots on the way)."""
    languages = story.all_languages
    pieces: list[dict] = []
    inputs: dict[str, Path] = {}
    for n, scene in enumerate(story.scenes):
        if n in dialogue:
            turns = dialogue[n][lang].turns
            for i, turn in enumerate(turns):
                last = i + 1 == len(turns) or turns[i + 1].scene != turn.scene
                gap = GAP_SCENE if last else GAP_TURN
                voice = _voice(story, turn.speaker, turn.text, lang, pipeline)
                options = _talk_options(story, turn.speaker, gap)
                shot = pipeline.run(_spec("talk-shot", {"face": story.cast[turn.speaker].face,
                                                        "speech": voice.file("speech.wav")},
                                          options))  # fmt: skip
                name = f"p{len(pieces):03d}"
                inputs[name] = shot.file("shot.mp4")
                pieces.append({"kind": "shot", "input": name,
                               "speaker": story.display_name(turn.speaker),
                               "text": {other: _words(dialogue[n][other].turns[i])
                                        for other in languages},
                               "speech": voice.report["duration"]})  # fmt: skip
        else:
            name = f"p{len(pieces):03d}"
            inputs[name] = scene.video
            lines = []
            if n in narration:
                turns = narration[n][lang].turns
                for i, turn in enumerate(turns):
                    voice = _voice(story, turn.speaker, turn.text, lang, pipeline)
                    line = f"{name}-n{i:02d}"
                    inputs[line] = voice.file("speech.wav")
                    last = i + 1 == len(turns)
                    lines.append({"input": line, "speaker": story.display_name(turn.speaker),
                                  "text": {other: _words(narration[n][other].turns[i])
                                           for other in languages},
                                  "gap": 0.0 if last else GAP_TURN})  # fmt: skip
            pieces.append({"kind": "footage", "input": name, "mix": scene.mix,
                           "narration": lines})  # fmt: skip
    return pipeline.run(_spec("assemble", inputs, {
        "width": story.width, "height": story.height, "fps": story.fps, "lufs": story.lufs,
        "language": lang, "languages": languages, "pieces": pieces}))  # fmt: skip


def _words(turn) -> str:
    return turn.spoken_text or turn.text


def _voice(story: Story, speaker: str, text: str, lang: str, pipeline):
    options, inputs = _voice_options(story, speaker, text, lang)
    return pipeline.run(_spec("voice-turn", inputs, options))


def _link_tree(source: Path, dest: Path) -> None:
    """Copy a folder as hard links where the file system allows (the cache keeps the
    originals and never changes them), else as copies."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    if dest.exists():
        for entry in source.iterdir():
            target = dest / entry.name
            if entry.is_dir():
                shutil.copytree(entry, target, copy_function=link)
            else:
                link(str(entry), str(target))
        return
    shutil.copytree(source, dest, copy_function=link)
