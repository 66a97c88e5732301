"""Chunked encoding: the title cut on its segment grid, each chunk encoded apart, then joined.

Contract:

- :func:`plan_chunks` (pure) cuts a title into :class:`ChunkSpec` s, plain JSON data:
  every chunk starts on a segment boundary of the title's timeline (the first chunk holds
  the opening's short segments) and lasts whole segments, about ``chunk_seconds``; the
  last takes the remainder (a remainder under half a chunk joins the chunk before).
- :func:`encode_chunk` (files in, files out) decodes the source from the chunk's first
  frame (an input seek, frame-accurate: it transcodes, never cuts with stream copy) to its
  last (each rendition ends after its frames of the range: :func:`output_frames`), encodes
  every rendition in one ffmpeg run with keyframes forced on the title's grid counted from
  the chunk's start, and packages each rendition straight into CMAF segments. It writes a
  folder named by the spec's digest under ``out_dir`` (built aside and renamed in whole,
  its :class:`ChunkResult` as ``chunk.json`` inside), so the same spec always gives the
  same names, and a spec already encoded there is not encoded again. It is a top-level
  function of a JSON-serialisable spec and files: a pool process or a Celery task can run
  it.
- :func:`join` assembles each rendition from its chunks: one init segment (the chunks'
  must be the same; :class:`~reelforge.errors.MediaError` when their codec configurations
  differ), the segments renumbered and their decode times (``tfdt``) and fragment numbers
  moved on by what came before. Nothing is decoded or encoded again.
- :class:`ChunkRunner` runs specs somewhere and returns their results in order;
  :class:`LocalRunner` is a process pool on this machine.

Rate control: every chunk is encoded with capped CRF (see :mod:`reelforge.video.calibrate`):
one CRF per rendition for the whole title, the VBV cap per chunk. When chunks run side by
side, each encoder (and decoder and filter graph) is single-threaded, so that ``N``
workers use about ``N`` cores.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import queue
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel

from reelforge import layout
from reelforge.errors import MediaError
from reelforge.fsutil import write_text_atomic
from reelforge.media import ffmpeg, mp4
from reelforge.media.probe import MediaInfo
from reelforge.progress import NullProgress, Progress
from reelforge.video.codecs import CODECS
from reelforge.video.encode import Output, encode_ladder
from reelforge.video.ladder import Rendition
from reelforge.video.package import MIN_TAIL, IFrame, Segment, Track, package_track
from reelforge.video.timeline import Timeline

RESULT = "chunk.json"  # a chunk folder's result, written last

FrameCallback = Callable[[int], None]
"""Receives the number of the chunk's frames encoded so far."""


# --- specs and results ------------------------------------------------------------------


class ChunkOutput(BaseModel):
    """One rendition of a chunk: its rendition (with the title's CRF) and its depth."""

    rendition: Rendition
    deep: bool = False

    def output(self) -> Output:
        return Output(self.rendition, CODECS[self.rendition.codec], self.deep)


class ChunkEncode(BaseModel):
    """What every chunk of a title shares: the source, its probe, the renditions and the
    encoder settings."""

    source: str
    info: MediaInfo
    outputs: list[ChunkOutput]
    segment_duration: float
    opening: list[float] = []
    preset: str = "balanced"
    threads: int | None = None  # per encoder; 1 when chunks run side by side

    @property
    def timeline(self) -> Timeline:
        return Timeline(self.segment_duration, tuple(self.opening))


class ChunkSpec(BaseModel):
    """One chunk: ``[start, end)`` of the title (seconds, on segment boundaries), the number
    of its first segment in the title, and the shared encode."""

    index: int
    start: float
    end: float
    first_segment: int
    frames: int  # how many frames the chunk holds (for progress)
    encode: ChunkEncode
    # rendition name -> frames it ends after (every chunk but the last: see output_frames)
    limits: dict[str, int] = {}

    @property
    def digest(self) -> str:
        """SHA-256 of the spec's JSON: the same spec always names the same folder."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()

    @property
    def folder(self) -> str:
        return f"chunk-{self.index:04d}-{self.digest[:12]}"

    @property
    def timeline(self) -> Timeline:
        """The chunk's own timeline: the title's from 0, else the regular grid (keyframes
        counted from the chunk's start fall where the title's do)."""
        return self.encode.timeline if self.start <= 0 else Timeline(
            self.encode.segment_duration, ())  # fmt: skip


class ChunkSegment(BaseModel):
    name: str
    size: int
    start_ticks: int
    duration_ticks: int
    iframes: list[tuple[int, int, int]] = []  # (offset, length, start ticks)


class ChunkTrack(BaseModel):
    """One rendition's packaged part of a chunk (times count from the chunk's start)."""

    name: str
    init: str
    codec: str
    timescale: int
    width: int
    height: int
    segments: list[ChunkSegment]

    @property
    def ticks(self) -> int:
        return sum(s.duration_ticks for s in self.segments)


class ChunkResult(BaseModel):
    """What :func:`encode_chunk` wrote, relative to its ``out_dir``, and how long it took."""

    index: int
    folder: str
    start: float
    end: float
    first_segment: int
    frames: int
    seconds: float
    tracks: list[ChunkTrack]

    def track(self, name: str) -> ChunkTrack:
        return next(t for t in self.tracks if t.name == name)


# --- plan -------------------------------------------------------------------------------


def source_rate(info: MediaInfo) -> Fraction:
    """The constant frame rate every output is made from (the source's, exactly)."""
    return Fraction(info.video[0].frame_rate_exact) if info.video else Fraction(1)


def first_frame(t: float, rate: Fraction) -> int:
    """The index of the first frame at or after ``t`` seconds at ``rate``: where a decode
    seeked to ``t`` starts (and where the keyframe forced at ``t`` falls)."""
    return math.ceil(Fraction(str(round(t, 6))) * rate)


def output_frames(rendition: Rendition, rate: Fraction, start: float, end: float) -> int:
    """How many frames of ``rendition`` lie in ``[start, end)`` of the title. An encode of
    that range ends after them: a range whose end is not a frame time of its own (29.97
    fps, 8 s) would otherwise get the last frame twice from the frame-rate filter."""
    f0, f1 = first_frame(start, rate), first_frame(end, rate)
    step = rendition.fps_filter or ""
    if step.startswith("framestep="):
        k = int(step.split("=")[1])
        return -(-f1 // k) - -(-f0 // k)
    if step.startswith("fps="):
        out = Fraction(step.split("=")[1])
        return math.ceil(f1 / rate * out) - math.ceil(f0 / rate * out)
    return f1 - f0


def can_start_at(t: float, rate: Fraction, renditions: Sequence[Rendition]) -> bool:
    """Whether a chunk may start at ``t``: every rendition's frames then fall where they do
    in the whole title (a rendition keeping every k-th frame needs the chunk's first frame
    to be one it keeps; one resampled by ``fps=`` needs that frame on its grid too)."""
    f0 = first_frame(t, rate)
    for r in renditions:
        step = r.fps_filter or ""
        if step.startswith("framestep=") and f0 % int(step.split("=")[1]):
            return False
        if step.startswith("fps=") and (f0 / rate * Fraction(step.split("=")[1])).denominator != 1:
            return False
    return True


def decode_range(spec: ChunkSpec) -> tuple[float, float | None]:
    """Where a chunk's decode is seeked to and how long it reads (None: to the end): from
    the time of its first frame (floored to the microsecond, so that frame is the first
    kept: the chunk's frame grid is then the title's), one frame past its end (so the
    frame-rate filter fills its last frame as the whole title's encode does; the frame
    limits end each output on time)."""
    rate = source_rate(spec.encode.info)
    f0 = first_frame(spec.start, rate)
    seek = math.floor(f0 / rate * 1_000_000) / 1_000_000
    if not spec.limits:
        return seek, None
    f1 = first_frame(spec.end, rate)
    return seek, float((f1 - f0 + 1) / rate)


def chunk_ranges(timeline: Timeline, duration: float, chunk_seconds: float,
                 can_start: Callable[[float], bool] | None = None,
                 ) -> list[tuple[float, float, int]]:  # fmt: skip
    """``(start, end, first segment)`` of each chunk (see :func:`plan_chunks`); a boundary
    where ``can_start`` says no is not a chunk start."""
    cuts: list[tuple[float, int]] = []  # usable boundaries: (time, segments before it)
    for number, t in enumerate(timeline.boundaries()):
        if t >= duration - MIN_TAIL - 1e-6:  # a last sliver joins the segment before
            break
        if t <= 0 or (t >= timeline.opening_end - 1e-6  # chunks start after the opening
                      and (can_start is None or can_start(t))):  # fmt: skip
            cuts.append((round(t, 6), number))
    starts = [cuts[0]]
    for t, number in cuts[1:]:
        if t - starts[-1][0] >= chunk_seconds - 1e-6:
            starts.append((t, number))
    if len(starts) > 1 and duration - starts[-1][0] < chunk_seconds / 2 - 1e-6:
        starts.pop()
    ends = [t for t, _ in starts[1:]] + [duration]
    return [(t, end, n) for (t, n), end in zip(starts, ends, strict=True)]


def plan_chunks(timeline: Timeline, duration: float, chunk_seconds: float,
                encode: ChunkEncode) -> list[ChunkSpec]:  # fmt: skip
    """The chunks of a title of ``duration`` seconds (pure): on ``timeline``'s segment
    boundaries, whole segments of about ``chunk_seconds`` each, each (but the last) told
    how many frames of every rendition it holds."""
    if chunk_seconds <= 0 or duration <= 0:
        raise ValueError("chunk_seconds and duration must be positive")
    rate = source_rate(encode.info)
    renditions = [o.rendition for o in encode.outputs]
    ranges = chunk_ranges(timeline, duration, chunk_seconds,
                          lambda t: can_start_at(t, rate, renditions))  # fmt: skip
    specs = []
    for i, (start, end, first) in enumerate(ranges):
        last = i == len(ranges) - 1
        limits = {} if last else {r.name: output_frames(r, rate, start, end) for r in renditions}
        specs.append(ChunkSpec(index=i, start=start, end=end, first_segment=first,
                               frames=max(1, round((end - start) * float(rate))),
                               encode=encode, limits=limits))  # fmt: skip
    return specs


# --- encode one chunk -------------------------------------------------------------------


def encode_chunk(spec: ChunkSpec, out_dir: str | Path,
                 on_frames: FrameCallback | None = None) -> ChunkResult:  # fmt: skip
    """Encode and package one chunk into ``out_dir/<spec.folder>`` (see the module's
    contract); returns its result. Already there: returns the result written then."""
    out_dir = Path(out_dir)
    final = out_dir / spec.folder
    done = final / RESULT
    if done.is_file():
        return ChunkResult.model_validate_json(done.read_text(encoding="utf-8"))
    t0 = time.monotonic()
    staging = out_dir / f".{spec.folder}.partial-{uuid.uuid4().hex[:8]}"
    scratch = staging / ".encode"
    scratch.mkdir(parents=True)
    try:
        enc = spec.encode
        outputs = [o.output() for o in enc.outputs]
        fps = enc.info.video[0].frame_rate if enc.info.video else 1.0
        report = on_frames or (lambda _n: None)
        seek, length = decode_range(spec)
        written = encode_ladder(
            Path(enc.source), enc.info, outputs, scratch, timeline=spec.timeline,
            preset=enc.preset, audio=None, start=seek or None, duration=length,
            threads=enc.threads, frames=spec.limits or None,
            on_progress=lambda s: report(min(spec.frames, round(s * fps))),
        )  # fmt: skip
        tracks = []
        for o in outputs:
            name = o.rendition.name
            packaged = package_track(written.video[name], staging, track_id=name, kind="video",
                                     timeline=spec.timeline, directory=name)  # fmt: skip
            tracks.append(_chunk_track(packaged))
        shutil.rmtree(scratch)
        result = ChunkResult(index=spec.index, folder=spec.folder, start=spec.start,
                             end=spec.end, first_segment=spec.first_segment,
                             frames=spec.frames, seconds=round(time.monotonic() - t0, 3),
                             tracks=tracks)  # fmt: skip
        write_text_atomic(staging / RESULT, result.model_dump_json(indent=1))
        try:
            staging.rename(final)
        except OSError:  # another run of the same spec got there first: same names
            if not done.is_file():
                raise
            return ChunkResult.model_validate_json(done.read_text(encoding="utf-8"))
        report(spec.frames)
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _chunk_track(t: Track) -> ChunkTrack:
    ts = t.timescale
    return ChunkTrack(
        name=t.id, init=t.init_name, codec=t.codec, timescale=ts, width=t.width,
        height=t.height,
        segments=[ChunkSegment(name=s.name, size=s.size, start_ticks=s.start_ticks,
                               duration_ticks=s.duration_ticks,
                               iframes=[(i.offset, i.length, round(i.start * ts))
                                        for i in s.iframes])
                  for s in t.segments],
    )  # fmt: skip


# --- join -------------------------------------------------------------------------------


@dataclass
class Joined:
    """Each rendition joined: its packaged track in the output, and (when asked) the whole
    rendition as one fragmented MP4 (init and segments end to end) for the extras."""

    tracks: list[Track] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)


def check_inits(name: str, inits: list[bytes]) -> None:
    """Refuse (:class:`MediaError`) chunks of rendition ``name`` whose init segments do
    not describe the same stream: their sample entries (codec configuration record, size,
    depth, colour) must be identical byte for byte."""
    first = mp4.sample_entry(inits[0])
    for k, init in enumerate(inits[1:], start=1):
        if init != inits[0] and mp4.sample_entry(init) != first:
            raise MediaError(f"chunk {k} of {name} was encoded with another codec "
                             "configuration than chunk 0 (its init segment differs): the "
                             "chunks cannot be joined")  # fmt: skip


def join(results: Sequence[ChunkResult], chunk_dir: Path, out: Path, *,
         whole_dir: Path | None = None,
         directories: dict[str, str] | None = None) -> Joined:  # fmt: skip
    """Join ``results`` (every chunk of one title, any order) read from ``chunk_dir`` into
    tracks under ``out`` (``directories``: rendition name -> folder, default the layout's
    ``video/<name>``): one init each, segments renumbered from 0 with their ``tfdt`` and
    ``mfhd`` numbered on from the chunks before. With ``whole_dir``, each rendition is also
    written there as ``<name>.mp4``. A chunk that does not start where the ones before it
    end (by more than a frame) is refused: frames would be missing or doubled."""
    chunks = sorted(results, key=lambda r: r.index)
    if not chunks:
        raise ValueError("nothing to join")
    joined = Joined()
    for name in [t.name for t in chunks[0].tracks]:
        parts = [c.track(name) for c in chunks]
        inits = [(chunk_dir / c.folder / name / p.init).read_bytes()
                 for c, p in zip(chunks, parts, strict=True)]  # fmt: skip
        check_inits(name, inits)
        first = parts[0]
        ts = first.timescale
        directory = (directories or {}).get(name) or layout.track_directory("video", name)
        target = out / directory
        target.mkdir(parents=True, exist_ok=True)
        init_name = layout.content_name(layout.INIT, inits[0], ".mp4")
        (target / init_name).write_bytes(inits[0])
        whole = None
        if whole_dir is not None:
            joined.files[name] = whole_dir / f"{name}.mp4"
            whole = joined.files[name].open("wb")
            whole.write(inits[0])
        segments: list[Segment] = []
        delta = fragments = 0
        try:
            for chunk, part in zip(chunks, parts, strict=True):
                if part.timescale != ts:
                    raise MediaError(f"chunk {chunk.index} of {name} has another timescale")
                frame = ts / max(chunk.frames / max(chunk.end - chunk.start, 1e-6), 1e-6)
                if abs(delta - chunk.start * ts) > frame:
                    raise MediaError(f"chunk {chunk.index} of {name} starts at "
                                     f"{chunk.start:g} s but the chunks before it end at "
                                     f"{delta / ts:g} s")  # fmt: skip
                for seg in part.segments:
                    body = bytearray((chunk_dir / chunk.folder / name / seg.name).read_bytes())
                    moved = mp4.offset_fragments(body, delta, fragments + 1)
                    number = len(segments)
                    seg_name = layout.content_name(layout.segment_stem(number), bytes(body),
                                                   ".m4s")  # fmt: skip
                    (target / seg_name).write_bytes(body)
                    if whole is not None:
                        whole.write(body)
                    start = seg.start_ticks + delta
                    segments.append(Segment(
                        name=seg_name, start=start / ts, duration=seg.duration_ticks / ts,
                        size=len(body), start_ticks=start, duration_ticks=seg.duration_ticks,
                        iframes=[IFrame(offset=o, length=n, start=(t + delta) / ts)
                                 for o, n, t in seg.iframes]))  # fmt: skip
                    fragments += moved
                if chunk.first_segment + len(part.segments) != len(segments):
                    raise MediaError(f"chunk {chunk.index} of {name} should hold segments "
                                     f"from {chunk.first_segment}, not "
                                     f"{len(segments) - len(part.segments)}")  # fmt: skip
                delta += part.ticks
        finally:
            if whole is not None:
                whole.close()
        joined.tracks.append(Track(id=name, kind="video", directory=directory,
                                   init_name=init_name, init_size=len(inits[0]),
                                   codec=first.codec, timescale=ts, segments=segments,
                                   width=first.width, height=first.height))  # fmt: skip
    return joined


# --- runners ----------------------------------------------------------------------------


class ChunkRunner(Protocol):
    """Runs chunk specs somewhere and returns their results in the specs' order. ``workers``
    is how many chunks it runs at once (more than one: each encoder single-threaded)."""

    workers: int

    def map(self, specs: Sequence[ChunkSpec], out_dir: Path,
            progress: Progress | None = None) -> list[ChunkResult]:  # fmt: skip
        """Encode every spec into ``out_dir`` (see :func:`encode_chunk`); progress as
        chunk frames encoded. A failure or an interrupt stops every chunk and propagates."""
        ...


def default_workers() -> int:
    """The CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_frames_queue = None  # a pool worker's channel for progress (set by its initializer)


def _worker_start(frames, binary: str) -> None:
    """A pool worker's initializer: SIGTERM from the parent kills its ffmpeg and ends it,
    Ctrl-C is left to the parent; progress goes to ``frames``; the parent's ffmpeg."""
    global _frames_queue
    ffmpeg.install_worker_stop()
    ffmpeg.use_binary(binary)
    _frames_queue = frames


def _run_in_worker(spec_json: str, out_dir: str) -> str:
    spec = ChunkSpec.model_validate_json(spec_json)
    channel = _frames_queue

    def on_frames(n: int) -> None:
        if channel is not None:
            with contextlib.suppress(Exception):
                channel.put_nowait((spec.index, n))

    return encode_chunk(spec, out_dir, on_frames).model_dump_json()


class LocalRunner:
    """Chunks on this machine, ``workers`` at a time (default: one per CPU), each in a
    process of a :class:`~concurrent.futures.ProcessPoolExecutor`. On a failure, Ctrl-C or
    SIGTERM the parent terminates its workers, which kill their ffmpeg at once. (Inside a
    prefork Celery worker, which may not have children, make each chunk a task instead.)"""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or default_workers())

    def map(self, specs: Sequence[ChunkSpec], out_dir: Path,
            progress: Progress | None = None) -> list[ChunkResult]:  # fmt: skip
        import multiprocessing

        specs = list(specs)
        update = (progress or NullProgress()).stage(
            "encode (chunks)", sum(s.frames for s in specs), "frames"
        )
        if not specs:
            return []
        context = multiprocessing.get_context("fork")
        frames = context.Queue()
        done: dict[int, int] = {}
        pool = ProcessPoolExecutor(min(self.workers, len(specs)), mp_context=context,
                                   initializer=_worker_start,
                                   initargs=(frames, ffmpeg.ffmpeg_exe()))  # fmt: skip
        futures: list[Future] = []
        try:
            futures = [pool.submit(_run_in_worker, s.model_dump_json(), str(out_dir))
                       for s in specs]  # fmt: skip
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=0.1, return_when=FIRST_EXCEPTION)
                _drain(frames, done)
                for f in finished:
                    f.result()  # a chunk's failure: raise it here
                    done[specs[futures.index(f)].index] = specs[futures.index(f)].frames
                update(sum(done.values()))
            results = [ChunkResult.model_validate_json(f.result()) for f in futures]
        except BaseException:
            _terminate(pool)
            raise
        else:
            pool.shutdown(wait=True)
        finally:
            frames.close()
        return results


def _drain(frames, done: dict[int, int]) -> None:
    while True:
        try:
            index, n = frames.get_nowait()
        except (queue.Empty, OSError, ValueError):
            return
        done[index] = max(done.get(index, 0), n)


def _terminate(pool: ProcessPoolExecutor) -> None:
    """End every worker of ``pool`` now: SIGTERM (each kills its ffmpeg and exits), then
    SIGKILL for any still there after :data:`~reelforge.media.ffmpeg.STOP_GRACE`."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for p in processes:
        with contextlib.suppress(Exception):
            p.terminate()
    deadline = time.monotonic() + ffmpeg.STOP_GRACE
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            with contextlib.suppress(Exception):
                p.kill()
            p.join(1)
    pool.shutdown(wait=False, cancel_futures=True)
