"""The steps a story is made of, each a registered function from files and options to files.

Every step here takes a :class:`~reelforge.pipeline.spec.StepSpec` (named input files and
resolved, JSON-serialisable options), an empty folder to write into and a progress sink,
and returns a small JSON report naming the files it wrote. None keeps state between calls,
so the same step runs in-process or on a worker; the runner keys each by its inputs'
digests and options and skips what is already made.

- ``face-check``: a portrait holds a face the talk step can animate (nothing written);
- ``voice-turn``: one turn of a script spoken in its speaker's voice (``speech.wav``, 48 kHz,
  at the story's loudness, leading and trailing silence trimmed);
- ``talk-shot``: a speaker's face made to say one turn, with the pause that follows it
  (``shot.mp4``, frames and samples of equal length);
- ``assemble``: every shot and footage scene fitted into the story's picture at its frame
  rate and joined frame-accurately, the sound laid out sample-accurately under it and
  brought to the loudness target across scenes (``program.mkv``), and the subtitles timed
  from where each turn landed, one file per language (``subtitles-LANG.vtt``);
- ``publish-stream``: the program published as an adaptive stream (``stream/``).

What the steps need from the settings but must never carry in their options (hosted APIs'
keys, the voice chunk cache) comes from the :class:`~reelforge.config.Config` that whoever
runs them gives with :func:`using` (the CLI's ``make``; a worker at its start); without
one, the defaults: no API keys, the user cache folder.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import yaml

from reelforge.config import Config
from reelforge.media import ffmpeg
from reelforge.pipeline.runner import register
from reelforge.pipeline.spec import StepSpec
from reelforge.progress import Progress
from reelforge.voice import post
from reelforge.voice.subtitles import SubtitleCue, webvtt

RATE = post.RATE
DUCK_DB = -14.0  # footage sound under a narration (mix: true)
_settings: contextvars.ContextVar[Config | None] = contextvars.ContextVar(
    "step_settings", default=None
)


@contextlib.contextmanager
def using(config: Config) -> Iterator[None]:
    """Within the block, steps run in this context take their hosted-API services and voice
    cache from ``config`` (never part of a step's options, so never part of its key)."""
    token = _settings.set(config)
    try:
        yield
    finally:
        _settings.reset(token)


def settings() -> Config:
    """The settings given with :func:`using`, else the defaults (no API keys)."""
    return _settings.get() or Config()


def _write_wav(path: Path, audio: np.ndarray) -> None:
    import soundfile

    soundfile.write(path, np.clip(audio, -1.0, 1.0).astype(np.float32), RATE, subtype="PCM_24")


@register("face-check")
def face_check(spec: StepSpec, out: Path, progress: Progress) -> dict:
    """Input ``face``, option ``face_index``: the portrait holds a face the talk step can
    animate (an :class:`~reelforge.errors.InputError` otherwise); writes nothing."""
    from reelforge.pipeline.story import check_face

    check_face(spec.inputs["face"], int(spec.options["face_index"]))
    return {"face": spec.inputs["face"].name, "face_index": spec.options["face_index"]}


@register("voice-turn")
def voice_turn(spec: StepSpec, out: Path, progress: Progress) -> dict:
    """Options: ``speaker``, ``text`` (the turn with its cues), ``backend`` (resolved),
    ``voice``, ``model``, ``seed``, ``transcript``, ``lufs``; input ``reference`` (optional)."""
    from reelforge.voice.render import VoiceOptions, render

    o = spec.options
    voice = {k: o[k] for k in ("voice", "seed", "transcript") if o.get(k) is not None}
    if "reference" in spec.inputs:
        voice["reference"] = str(spec.inputs["reference"])
    front = yaml.safe_dump({"speakers": {o["speaker"]: voice}}) if voice else ""
    script = out / "turn.txt"
    script.write_text((f"---\n{front}---\n" if front else "") + f"[{o['speaker']}] {o['text']}\n",
                      encoding="utf-8")  # fmt: skip
    backend_options = {"model": o["model"]} if o.get("model") else {}
    config = settings()
    opts = VoiceOptions(backend=o["backend"], target_lufs=o["lufs"], mos=False,
                        backend_options=backend_options,
                        cache_dir=config.voice_cache_dir)  # fmt: skip
    report = render(script, out / "speech.wav", opts, progress, services=config.services)
    return {"speech": "speech.wav", "duration": report.duration, "backend": report.backend,
            "model": report.model, "loudness_lufs": report.loudness_lufs,
            "warnings": report.warnings}  # fmt: skip


@register("talk-shot")
def talk_shot(spec: StepSpec, out: Path, progress: Progress) -> dict:
    """Inputs ``face`` (portrait or video) and ``speech``; options ``tail`` (seconds of
    silence after the speech), ``fps``, ``video`` (whether ``face`` is a video) and the
    talk step's own: ``backend``, ``model``, ``checkpoint``, ``device``, ``motion``,
    ``face_index``."""
    from reelforge.lipsync.talk import TalkOptions, talk

    o = spec.options
    speech = post.decode(spec.inputs["speech"], RATE)
    padded = np.concatenate([speech, np.zeros(round(o["tail"] * RATE), np.float32)])
    voice = out / "line.wav"
    _write_wav(voice, padded)
    opts = TalkOptions(backend=o["backend"], fps=o["fps"], face_index=o["face_index"],
                       motion=o["motion"], model=o.get("model"), device=o["device"],
                       checkpoint=Path(o["checkpoint"]) if o.get("checkpoint") else None,
                       sync_mode="loop", seed=o.get("seed", 0))  # fmt: skip
    face = spec.inputs["face"]
    report = talk(None if o["video"] else face, voice, out / "shot.mp4", opts, progress,
                  video=face if o["video"] else None,
                  services=settings().services)  # fmt: skip
    return {"shot": "shot.mp4", "frames": report.frames, "fps": report.fps,
            "speech_seconds": round(speech.size / RATE, 4), "sync": report.sync,
            "width": report.width, "height": report.height}  # fmt: skip


def _frames(seconds: float, fps: int) -> int:
    return max(1, round(seconds * fps))


def _fit(audio: np.ndarray, samples: int) -> np.ndarray:
    if audio.size >= samples:
        return audio[:samples]
    return np.concatenate([audio, np.zeros(samples - audio.size, np.float32)])


@register("assemble")
def assemble(spec: StepSpec, out: Path, progress: Progress) -> dict:
    """Options: ``width``, ``height``, ``fps``, ``lufs``, ``language`` (this program's),
    ``languages`` (every subtitle language) and ``pieces``, in order: ``{"kind": "shot",
    "input": NAME, "speaker": ..., "text": {LANG: ...}, "speech": seconds}`` for a talking
    shot (its sound is the line), or ``{"kind": "footage", "input": NAME, "mix": bool,
    "narration": [{"input": NAME, "speaker", "text": {LANG: ...}, "gap"}...]}``; every
    ``input`` names a file in ``spec.inputs``."""
    from reelforge.media.probe import probe

    o = spec.options
    fps, width, height = int(o["fps"]), int(o["width"]), int(o["height"])
    sound: list[np.ndarray] = []
    frames: list[int] = []
    cues: list[tuple[float, float, str, dict[str, str]]] = []  # start, end, speaker, texts
    sources: list[Path] = []
    at = 0
    for piece in o["pieces"]:
        source = spec.inputs[piece["input"]]
        info = probe(source)
        start = at / fps
        if piece["kind"] == "shot":
            n = info.video[0].frames if info.video and info.video[0].frames else _frames(
                info.duration, fps)  # fmt: skip
            audio = _fit(post.decode(source, RATE), round(n / fps * RATE))
            cues.append((start, start + min(piece["speech"], n / fps), piece["speaker"],
                         piece["text"]))  # fmt: skip
        else:
            lines, cursor = [], 0.0
            for line in piece.get("narration", []):
                speech = post.decode(spec.inputs[line["input"]], RATE)
                cues.append((start + cursor, start + cursor + speech.size / RATE,
                             line["speaker"], line["text"]))  # fmt: skip
                lines.append((cursor, speech))
                cursor += speech.size / RATE + line.get("gap", 0.0)
            n = _frames(max(info.duration, cursor), fps)
            samples = round(n / fps * RATE)
            own = _fit(post.decode(source, RATE), samples) if info.audio else np.zeros(
                samples, np.float32)  # fmt: skip
            if lines:
                bed = own * 10 ** (DUCK_DB / 20) if piece.get("mix") else np.zeros_like(own)
                for offset, speech in lines:
                    i = round(offset * RATE)
                    bed[i : i + speech.size] += speech[: max(0, samples - i)]
                own = bed
            audio = own
        sound.append(audio)
        frames.append(n)
        sources.append(source)
        at += n
    program_audio = post.normalize(np.concatenate(sound), RATE, float(o["lufs"]))
    wav = out / "program.wav"
    _write_wav(wav, program_audio)
    total = sum(frames)
    filters, labels = [], []
    for k, n in enumerate(frames):
        filters.append(
            f"[{k}:v:0]fps={fps},scale={width}:{height}:force_original_aspect_ratio=decrease"
            f":flags=lanczos,pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,"
            f"format=yuv420p,tpad=stop_mode=clone:stop={n},trim=end_frame={n},"
            f"setpts=N/({fps}*TB)[v{k}]"
        )
        labels.append(f"[v{k}]")
    filters.append(f"{''.join(labels)}concat=n={len(frames)}:v=1:a=0[v]")
    inputs: list[str] = []
    for source in sources:
        inputs += ["-i", str(source)]
    program = out / "program.mkv"
    update = progress.stage("assemble", total, "frames")
    ffmpeg.run([*inputs, "-i", str(wav), "-filter_complex", ";".join(filters), "-map", "[v]",
                "-map", f"{len(sources)}:a:0", "-c:v", "libx264", "-preset", "veryfast",
                "-crf", "12", "-c:a", "pcm_s24le", "-frames:v", str(total), str(program)],
               subject=spec.inputs[o["pieces"][0]["input"]],
               on_progress=lambda s: update(min(total, s * fps)))  # fmt: skip
    update(total)
    wav.unlink()
    for lang in o["languages"]:  # every language's words, at this program's turns
        vtt = webvtt([SubtitleCue(a, b, speaker, " ".join(texts[lang].split()))
                      for a, b, speaker, texts in cues])  # fmt: skip
        (out / f"subtitles-{lang}.vtt").write_text(vtt, encoding="utf-8")
    bounds, t = [], 0
    for n in frames:
        bounds.append([round(t / fps, 4), round((t + n) / fps, 4)])
        t += n
    return {"program": "program.mkv", "subtitles": [f"subtitles-{lang}.vtt" for lang in
                                                      o["languages"]], "frames": total,
            "duration": round(total / fps, 4), "pieces": bounds, "cues": len(cues),
            "language": o["language"]}  # fmt: skip


@register("publish-stream")
def publish_stream(spec: StepSpec, out: Path, progress: Progress) -> dict:
    """Input ``program`` and ``subtitles-LANG`` files (each a subtitle track inside the
    stream); options: publish's own (see :class:`~reelforge.video.publish.PublishOptions`)
    under ``publish``."""
    from reelforge.pipeline.graph import publish_fields
    from reelforge.video.publish import PublishOptions, publish

    fields = dict(spec.options["publish"])
    subtitles = {k.removeprefix("subtitles-"): v for k, v in spec.inputs.items()
                 if k.startswith("subtitles-")}  # fmt: skip
    if subtitles:
        fields["subtitles"] = subtitles
    opts = PublishOptions(**publish_fields(fields))
    report = publish(spec.inputs["program"], out / "stream", opts, progress)
    data = json.loads(report.model_dump_json())
    return {"stream": "stream", "renditions": len(data["renditions"]),
            "duration": data["totals"]["media_duration"]}  # fmt: skip


def tail_after(gap: float, fps: int) -> float:
    """The silence after a line, rounded to whole frames."""
    return math.ceil(gap * fps) / fps
