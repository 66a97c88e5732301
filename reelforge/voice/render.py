"""The voice step: a dialogue script in, normalised speech with subtitles and a report out.

Contract: :func:`render` parses the script, synthesises it chunk by chunk with one backend
(each chunk served from the cache when nothing that shapes it changed), joins the chunks,
trims silence, normalises loudness, and writes ``OUT`` (wav, m4a or opus), ``OUT.vtt`` and
``OUT.report.json``. All three appear together or not at all
(:func:`reelforge.outputs.output_files`); the script and reference clips are only read and
never named as outputs; the output is claimed, and found writable, before any synthesis.
A script with nothing to speak is refused before that (see :mod:`reelforge.voice.script`);
a backend that returns only silence is a :class:`~reelforge.errors.BackendError`.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from reelforge.config import Services
from reelforge.errors import BackendError, InputError
from reelforge.outputs import FileSet, check_apart, output_files
from reelforge.progress import NullProgress, Progress
from reelforge.voice import backends as registry
from reelforge.voice import post
from reelforge.voice.backends.base import Backend, Chunk, Line, Synthesis
from reelforge.voice.cache import ChunkCache, file_digest, make_key
from reelforge.voice.chunking import make_chunks
from reelforge.voice.script import Piece, Script, load
from reelforge.voice.subtitles import SubtitleCue, webvtt

GAP_SAME_TURN = 0.15
GAP_TURN = 0.35
GAP_SCENE = 0.8
R = TypeVar("R")
ANCHOR_TEXT = "This is how I sound when I tell a story, calm and clear."


class TurnReport(BaseModel):
    turn: int
    speaker: str
    text: str
    start: float
    end: float
    duration: float
    real_time_factor: float | None
    loudness_lufs: float | None
    true_peak_dbtp: float | None
    dnsmos: dict[str, float] | None = None


class ChunkReport(BaseModel):
    chunk: int
    turns: list[int]
    backend: str
    model: str
    cached: bool
    seconds: float
    synthesis_seconds: float
    cost: dict | None = None


class VoiceReport(BaseModel):
    script: str
    output: str
    subtitles: str
    backend: str
    model: str
    duration: float
    real_time_factor: float
    loudness_lufs: float
    true_peak_dbtp: float
    target_lufs: float
    dnsmos: dict[str, float] | None
    backend_calls: int
    cache_hits: int
    turns: list[TurnReport]
    chunks: list[ChunkReport]
    warnings: list[str]


class VoiceOptions(BaseModel):
    """What a render is asked to do; plain data (JSON), so a job or a worker can carry it, and
    no secrets (API keys travel apart, in :func:`render`'s ``services``). The chunk cache
    lives in ``cache_dir`` (default: :func:`reelforge.voice.cache.default_dir`; the CLI passes
    the settings' ``voice_cache_dir``) and is used unless ``use_cache`` is false."""

    model_config = ConfigDict(extra="forbid")

    backend: str | None = None
    backend_options: dict = Field(default_factory=dict)
    target_lufs: float = post.TARGET_LUFS
    cache_dir: Path | None = None
    use_cache: bool = True
    mos: bool = True


def check_output(output: Path) -> None:
    if output.suffix.lower() not in post.FORMATS:
        raise InputError(
            f"unsupported output type {output.suffix or '(none)'!r}; use .wav, .m4a or .opus",
            path=output,
        )
    if output.is_dir():
        raise InputError("output is a directory", path=output)


def _load_reference(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError("reference clip not found", path=path)
    try:
        audio = post.decode(path, post.RATE)
    except ValueError:
        raise InputError("reference clip is not audio", path=path) from None
    if audio.size < post.RATE // 2:
        raise InputError("reference clip is not audio (or shorter than 0.5 s)", path=path)
    return audio


def _chunk_key(
    backend: Backend, chunk: Chunk, script: Script, prompts: dict, digests: dict[str, str]
) -> str:
    """``digests`` maps a speaker to the hash of its reference clip (hashed once per run)."""
    speakers = sorted({line.speaker for line in chunk.lines})
    voices = {}
    for s in speakers:
        spec = script.speakers[s].model_dump(mode="json")
        if s in digests:
            spec["reference"] = digests[s]
        voices[s] = spec
    return make_key({
        "backend": backend.name,
        "model": backend.model,
        "params": dict(backend.params),
        "voices": voices,
        "text": chunk.dia_text(),
        "prompts": {s: prompts[s][3] for s in speakers if s in prompts}
        if backend.uses_prompts else {},
    })  # fmt: skip


def _estimate_bounds(chunk: Chunk, seconds: float) -> list[tuple[float, float]]:
    """Line boundaries by share of characters, for backends that do not time lines."""
    weights = [max(1, len(line.dia_text())) for line in chunk.lines]
    total = sum(weights)
    bounds, cursor = [], 0.0
    for w in weights:
        span = seconds * w / total
        bounds.append((cursor, cursor + span))
        cursor += span
    return bounds


def render(
    script_path: str | Path,
    output: str | Path,
    options: VoiceOptions | None = None,
    progress: Progress | None = None,
    *,
    services: Services | None = None,
) -> VoiceReport:
    """See the module docstring; a hosted backend takes its key and URL from ``services``."""
    opts = options or VoiceOptions()
    progress = progress or NullProgress()
    output = Path(output)
    check_apart(output, [script_path], folder=False)
    check_output(output)
    script = load(script_path)
    references = {
        name: _load_reference(spec.reference)
        for name, spec in script.speakers.items()
        if spec.reference is not None
    }
    digests = {name: file_digest(script.speakers[name].reference) for name in references}
    backend = registry.create(opts.backend, services, **opts.backend_options)
    cache = ChunkCache(opts.cache_dir, enabled=opts.use_cache)
    chunks = make_chunks(script, per_turn=backend.name in registry.OFFLINE)
    inputs = [script_path, *(script.speakers[name].reference for name in references)]
    with output_files(output, companions=_companions(output), inputs=inputs) as files:
        return _synthesise(script_path, output, opts, progress, script, references, digests,
                           backend, cache, chunks, files)  # fmt: skip


def _companions(output: Path) -> tuple[Path, Path]:
    """``OUT.vtt`` and ``OUT.report.json`` beside ``OUT``."""
    return (output.with_suffix(output.suffix + ".vtt"),
            output.with_suffix(output.suffix + ".report.json"))  # fmt: skip


def _synthesise(script_path, output: Path, opts: VoiceOptions, progress: Progress,
                script: Script, references: dict[str, np.ndarray], digests: dict[str, str],
                backend: Backend, cache: ChunkCache, chunks: list[Chunk],
                files: FileSet) -> VoiceReport:  # fmt: skip
    """Synthesise, assemble and measure the script, then write it into ``files``."""
    # prompts: speaker -> (audio, rate, transcript, identity) that later chunks condition on
    prompts: dict[str, tuple[np.ndarray, int, str, str]] = {}
    for name, audio in references.items():
        spec = script.speakers[name]
        prompts[name] = (audio, post.RATE, spec.transcript or "", digests[name])

    update = progress.stage("voice", len(chunks), "chunks")
    synths: list[tuple[Synthesis, bool, float]] = []
    calls = hits = 0
    if backend.uses_prompts:
        # A speaker without a reference clip is anchored to one fixed sentence in its own
        # voice (its seed), so every chunk shares the voice and no chunk depends on another.
        for speaker in script.speaker_ids:
            if speaker in prompts:
                continue
            anchor = Chunk(-1, (Line(-1, speaker, (Piece("text", ANCHOR_TEXT),)),))
            key = _chunk_key(backend, anchor, script, {}, digests)
            synth = cache.get(key)
            if synth is None:
                synth = backend.synthesize(anchor, script.speakers, {})
                calls += 1
                cache.put(key, synth)
            else:
                hits += 1
            prompts[speaker] = (
                post.resample(synth.audio, synth.sample_rate), post.RATE, ANCHOR_TEXT, key
            )  # fmt: skip
    keys = [_chunk_key(backend, chunk, script, prompts, digests) for chunk in chunks]
    found = [cache.get(key) for key in keys]
    hits += sum(1 for f in found if f is not None)
    voice_prompts = {s: p[:3] for s, p in prompts.items()}

    def make(n: int) -> tuple[Synthesis, float]:
        t0 = time.monotonic()
        synth = backend.synthesize(chunks[n], script.speakers, voice_prompts)
        return synth, time.monotonic() - t0

    missing = [n for n, f in enumerate(found) if f is None]
    made: dict[int, tuple[Synthesis, float]] = {}
    workers = max(1, min(backend.concurrency, len(missing) or 1))
    done = len(chunks) - len(missing)
    update(done)
    started = time.monotonic()
    for n, result in _in_background(make, missing, workers):
        cache.put(keys[n], result[0])  # here, so a chunk abandoned half-made is never kept
        made[n] = result
        calls += 1
        done += 1
        update(done)
    synthesis_wall = time.monotonic() - started
    for n, f in enumerate(found):
        if f is not None:
            synths.append((f, True, 0.0))
        else:
            synths.append((made[n][0], False, made[n][1]))

    # Assemble at 48 kHz.
    parts: list[np.ndarray] = []
    gaps: list[float] = []
    line_spans: list[tuple[int, int, float, float]] = []  # chunk, turn, start, end (chunk-relative)
    for n, (chunk, (synth, _, _)) in enumerate(zip(chunks, synths, strict=True)):
        audio = post.resample(synth.audio, synth.sample_rate)
        trimmed, offset = post.trim_silence(audio)
        seconds = trimmed.size / post.RATE
        bounds = synth.line_bounds or _estimate_bounds(chunk, audio.size / post.RATE)
        for line, (a, b) in zip(chunk.lines, bounds, strict=True):
            line_spans.append((n, line.turn, max(0.0, a - offset), min(seconds, b - offset)))
        if n:
            prev = chunks[n - 1].lines[-1].turn
            this = chunk.lines[0].turn
            same_scene = script.turns[prev].scene == script.turns[this].scene
            gaps.append(GAP_SAME_TURN if prev == this else GAP_TURN if same_scene else GAP_SCENE)
        parts.append(trimmed)
    joined, starts = post.join(parts, gaps)
    if not np.isfinite(post.loudness(joined)):  # silence: nothing to normalise or subtitle
        raise BackendError(f"{backend.name} returned only silence for this script",
                           path=script_path)  # fmt: skip
    audio, lead = post.trim_silence(joined)
    audio = post.normalize_for(audio, output.suffix, opts.target_lufs)
    total = audio.size / post.RATE

    spans: dict[int, list[float]] = {}
    for n, turn, a, b in line_spans:
        s, e = starts[n] + a - lead, starts[n] + b - lead
        if turn in spans:
            spans[turn][1] = max(spans[turn][1], e)
        else:
            spans[turn] = [s, e]
    cues = []
    turn_reports = []
    chunk_reports = []
    for n, (chunk, (synth, cached, elapsed)) in enumerate(zip(chunks, synths, strict=True)):
        chunk_reports.append(ChunkReport(
            chunk=n, turns=sorted({ln.turn for ln in chunk.lines}), backend=backend.name,
            model=synth.model or backend.model, cached=cached,
            seconds=round(parts[n].size / post.RATE, 3), synthesis_seconds=round(elapsed, 3),
            cost=synth.cost,
        ))  # fmt: skip
    for turn in script.turns:
        s, e = spans[turn.index]
        s, e = max(0.0, s), min(total, e)
        cues.append(SubtitleCue(s, e, turn.speaker, turn.spoken_text or turn.text))
        seg = audio[int(s * post.RATE) : int(e * post.RATE)]
        own = [c for c in chunk_reports if turn.index in c.turns]
        own_time = sum(c.synthesis_seconds / len(c.turns) for c in own)
        turn_reports.append(TurnReport(
            turn=turn.index, speaker=turn.speaker, text=turn.text, start=round(s, 3),
            end=round(e, 3), duration=round(e - s, 3),
            real_time_factor=round(own_time / (e - s), 4) if e > s and own_time else None,
            loudness_lufs=round(post.loudness(seg), 2) if seg.size else None,
            true_peak_dbtp=round(post.true_peak_db(seg), 2) if seg.size else None,
            dnsmos=_mos(seg) if opts.mos else None,
        ))  # fmt: skip

    vtt_path, report_path = _companions(output)
    report = VoiceReport(
        script=str(script_path), output=str(output), subtitles=str(vtt_path),
        backend=backend.name, model=backend.model, duration=round(total, 3),
        real_time_factor=round(synthesis_wall / total, 4) if total else 0.0,
        loudness_lufs=round(post.loudness(audio), 2),
        true_peak_dbtp=round(post.true_peak_db(audio), 2),
        target_lufs=opts.target_lufs, dnsmos=_mos(audio) if opts.mos else None,
        backend_calls=calls, cache_hits=hits, turns=turn_reports, chunks=chunk_reports,
        warnings=script.warnings,
    )  # fmt: skip
    _write_together(files, output, audio, vtt_path, webvtt(cues), report_path, report)
    return report


def _in_background(call: Callable[[int], R], items: list[int],
                   workers: int) -> Iterator[tuple[int, R]]:  # fmt: skip
    """``(item, call(item))`` for every item, in the order they finish, computed on
    ``workers`` daemon threads while this thread waits (so a signal interrupts the wait at
    once, even while a backend is inside native code). A call's exception is raised here.
    When the caller stops early (an error, Ctrl-C), no further call starts and running ones
    are abandoned, not waited for: a chunk can take minutes, and a daemon thread does not
    hold the process open."""
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    results: queue.SimpleQueue[tuple[int, R | None, BaseException | None]] = queue.SimpleQueue()
    for item in items:
        todo.put(item)
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            try:
                item = todo.get_nowait()
            except queue.Empty:
                return
            try:
                results.put((item, call(item), None))
            except BaseException as exc:  # handed to the waiting thread
                results.put((item, None, exc))

    for _ in range(min(workers, len(items))):
        threading.Thread(target=work, name="voice-synthesis", daemon=True).start()
    try:
        for _ in items:
            item, value, error = results.get()
            if error is not None:
                raise error
            yield item, value  # type: ignore[misc]
    finally:
        stop.set()


def _mos(audio: np.ndarray) -> dict[str, float] | None:
    from reelforge.voice.mos import dnsmos

    return dnsmos(audio, post.RATE)


def _write_together(files: FileSet, output: Path, audio: np.ndarray, vtt_path: Path, vtt: str,
                    report_path: Path, report: VoiceReport) -> None:  # fmt: skip
    """Write the three outputs to the claim's temporaries; the claim renames them all."""
    post.encode(audio, files.temp(output), subject=output)
    files.temp(vtt_path).write_text(vtt, encoding="utf-8")
    files.temp(report_path).write_text(json.dumps(report.model_dump(), indent=2),
                                       encoding="utf-8")  # fmt: skip
