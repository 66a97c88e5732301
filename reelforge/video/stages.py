"""Publish's stages: plain functions from files and options to files and a report part.

Contract: each stage reads the files it is given and writes only into the folder it is
given; nothing is kept between calls, so a stage may run in another process or on another
machine as long as its inputs travel with it. :func:`reelforge.video.publish.publish`
composes them:

- :func:`plan` (pure): probe information and options -> :class:`Plan`, the video outputs
  (every codec's renditions), the audio settings and languages, the subtitle and
  alternate audio files and the segment timeline, with notes; :func:`check_track_files`
  then refuses track files that are missing or do not parse (before anything is written);
- :func:`analyse` (per-title ladders): the rate-quality analysis whose rungs :func:`plan`
  then uses;
- :func:`encode`: one ffmpeg run for the whole ladder (one decode) and every audio track
  (the main one, and each alternate language measured and normalised first) ->
  :class:`Encoded`, one fragmented MP4 per track in a work folder; an optional
  ``start``/``duration`` encodes only that range of the video (its decode seeked to the
  exact start; audio is encoded once, whole); :func:`encode_chunked` instead cuts the
  video into chunks on the segment grid (:mod:`reelforge.video.chunks`), encodes them with
  capped CRF through a :class:`~reelforge.video.chunks.ChunkRunner` (a local process pool
  by default), and the audio once, whole;
- :func:`package`: encoded tracks -> :class:`Packaged`, CMAF segments with
  content-hashed names in the output folder, measured per track, and the subtitles cut
  into WebVTT segments on the video's segments; a chunked encode's video is joined
  (segments renumbered, decode times moved on, nothing re-encoded), and each rendition
  joined whole in the work folder is what the extras then read;
- :func:`extras`: the named extras (:data:`EXTRAS`: poster preview, poster, sprites,
  fallback, rate-quality plot) -> :class:`ExtrasResult`; each extra is built in the work
  folder and its files renamed into the output (index files last), so a reader of the
  output never sees half of one;
- :func:`score`: VMAF per rendition -> :class:`Scores` (``quality`` among a publish's
  extras);
- :func:`manifests`: packaged tracks -> the HLS playlists and the DASH MPD (written last,
  so nothing names a file before it exists); :func:`build_report` and
  :func:`write_report` make and (atomically) write ``report.json``.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from reelforge import __version__, layout
from reelforge.errors import InputError
from reelforge.fsutil import write_text_atomic
from reelforge.media.probe import MediaInfo, VideoStreamInfo
from reelforge.progress import NullProgress, Progress
from reelforge.video import dash, hls, ladder, languages
from reelforge.video.codecs import parse_codecs
from reelforge.video.encode import (
    AudioSettings,
    Output,
    base_filters,
    encode_ladder,
    keeps_depth,
    source_filters,
    to_bt709,
)
from reelforge.video.package import Track, package_track
from reelforge.video.report import (
    Files,
    PublishReport,
    RateQualityPoint,
    RenditionReport,
    Settings,
    SubtitleReport,
    Totals,
)
from reelforge.video.timeline import Timeline, default_opening
from reelforge.video.webvtt import TextTrack

if TYPE_CHECKING:
    from reelforge.video.alternates import PreparedAudio
    from reelforge.video.chunks import ChunkResult, ChunkRunner, ChunkSpec
    from reelforge.video.pertitle import PerTitle
    from reelforge.video.publish import PublishOptions

FALLBACK_MAX_HEIGHT = 720
FALLBACK_MAX_KBPS = 3000  # a progressive file cannot adapt: keep it playable on modest links
POSTER_MAX_WIDTH = 1920
VMAF_STEP = 7  # VMAF on every 7th frame at most: within 0.1 of every frame on a 20 s ladder


# --- plan -------------------------------------------------------------------------------


@dataclass
class Plan:
    """What a publish makes of one source: pure data, computed from the probe and options."""

    info: MediaInfo
    outputs: list[Output]  # every codec's video renditions, in encode order
    timeline: Timeline
    audio: AudioSettings | None  # None: the source has no audio
    preset: str
    ladder_name: str
    codecs: tuple[str, ...]
    notes: list[str] = field(default_factory=list)
    audio_language: str | None = None  # the main audio's (BCP 47), when known
    alternates: list[tuple[str, Path]] = field(default_factory=list)  # language -> audio
    subtitles: list[tuple[str, Path]] = field(default_factory=list)  # language -> WebVTT

    @property
    def video(self) -> VideoStreamInfo | None:
        return self.info.video[0] if self.info.video else None

    @property
    def renditions(self) -> list[ladder.Rendition]:
        return [o.rendition for o in self.outputs]

    @property
    def duration(self) -> float:
        return self.info.duration

    def settings(self, audio_bitrate_kbps: int) -> Settings:
        return Settings(
            segment_duration=self.timeline.segment_duration,
            start_segments=list(self.timeline.opening),
            keyframe_interval=round(self.timeline.keyframe_interval, 6),
            preset=self.preset,
            audio_bitrate_kbps=audio_bitrate_kbps,
            ladder=self.ladder_name,
            codecs=list(self.codecs),
        )

    def as_dict(self) -> dict:
        """The plan as JSON-ready data (renditions, timeline, audio, notes)."""
        return {
            "renditions": [dict(o.rendition.model_dump(), deep=o.deep) for o in self.outputs],
            "segment_duration": self.timeline.segment_duration,
            "start_segments": list(self.timeline.opening),
            "audio": None if self.audio is None else vars(self.audio),
            "audio_language": self.audio_language,
            "alternate_audio": {lang: str(path) for lang, path in self.alternates},
            "subtitles": {lang: str(path) for lang, path in self.subtitles},
            "notes": list(self.notes),
        }


def language(tag: str, option: str) -> str:
    """``tag`` as a canonical BCP 47 tag, or a one-line :class:`InputError` naming ``option``."""
    try:
        return languages.canonical(tag)
    except ValueError as exc:
        raise InputError(f"{option}: {exc}") from None


def named_tracks(given, option: str) -> list[tuple[str, Path]]:
    """A dict (language -> file) or list of (language, file) pairs as checked
    ``(canonical language, Path)`` pairs: each language once."""
    items = list(given.items() if isinstance(given, dict) else given or [])
    out: list[tuple[str, Path]] = []
    for item in items:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise InputError(f"{option}: expected (language, file) pairs, not {item!r}")
        tag = language(str(item[0]), option)
        if any(tag == seen for seen, _ in out):
            raise InputError(f"{option}: {tag} is given twice")
        out.append((tag, Path(item[1])))
    return out


def check_track_files(plan: Plan) -> None:
    """Refuse (one line, exit 2) subtitle files that are missing or do not parse as WebVTT
    and audio files that are missing or hold no audio; reads them, writes nothing."""
    from reelforge.video.alternates import check_audio
    from reelforge.video.webvtt import read_vtt

    for tag, path in plan.subtitles:
        try:
            read_vtt(path)
        except InputError as exc:
            raise InputError(f"--subtitles {tag}: {exc.reason}", path=path) from None
    for tag, path in plan.alternates:
        try:
            check_audio(path, f"--audio-track {tag}")
        except InputError as exc:
            raise InputError(exc.reason.replace("--audio-track:", f"--audio-track {tag}:"),
                             path=path) from None  # fmt: skip
    if plan.alternates and plan.audio is None:
        raise InputError("--audio-track: the input has no audio of its own to be the main "
                         "track", path=plan.info.path)  # fmt: skip
    if plan.audio_language and plan.audio_language in dict(plan.alternates):
        raise InputError(f"--audio-track: {plan.audio_language} is the main audio's "
                         "language; give --audio-language to name the main one")  # fmt: skip


def plan_outputs(video: VideoStreamInfo, rungs: list[ladder.Rung] | None,
                 codecs: tuple[str, ...]) -> list[Output]:  # fmt: skip
    """Every codec's renditions: the ladder's resolutions at the codec's share of the
    H.264 bitrates (see :mod:`reelforge.video.codecs`)."""
    rungs = rungs or list(ladder.APPLE_H264_LADDER)
    outputs: list[Output] = []
    deep = keeps_depth(video)
    for spec in parse_codecs(",".join(codecs)):
        scaled = [r.model_copy(update={"bitrate_kbps": max(100, round(
            r.bitrate_kbps * spec.bitrate_factor)), "crf": r.crf if spec.name == "h264"
            else None}) for r in rungs]  # fmt: skip
        planned = ladder.plan(scaled, display_width=video.display_width,
                              display_height=video.display_height,
                              source_fps=video.frame_rate, codec=spec.name)  # fmt: skip
        outputs += [Output(r, spec, deep and spec.keeps_ten_bit) for r in planned]
    return outputs


def plan(info: MediaInfo, opts: PublishOptions, analysis: PerTitle | None = None) -> Plan:
    """The renditions, audio and timeline of a publish of a source described by ``info``
    (pure: reads no file). With ``analysis``, the ladder is the per-title one."""
    video = info.video[0] if info.video else None
    rungs, ladder_name = opts.rungs, opts.ladder_name
    if analysis is not None:
        rungs, ladder_name = analysis.ladder_rungs(), "per-title"
    outputs = plan_outputs(video, rungs, opts.codecs) if video is not None else []
    notes = list(opts.notes)
    if video is not None and video.is_hdr:
        kept = [o.codec.name for o in outputs if o.deep]
        notes.append("HDR source: tone-mapped to BT.709 SDR for h264"
                     + (f"; kept 10-bit HDR for {', '.join(dict.fromkeys(kept))}"
                        if kept else ""))  # fmt: skip
    elif video is not None and keeps_depth(video) and any(o.deep for o in outputs):
        notes.append(f"{video.bit_depth}-bit source: kept 10-bit for HEVC, VP9 and AV1; "
                     "8-bit for H.264")  # fmt: skip
    if video is not None and video.is_interlaced:
        notes.append(f"interlaced source ({video.field_order}): deinterlaced with bwdif")
    if analysis is not None:
        notes += analysis.notes
    timeline = Timeline(opts.segment_duration, default_opening(opts.segment_duration)
                        if opts.start_segments is None else opts.start_segments)  # fmt: skip
    audio = AudioSettings(bitrate_kbps=opts.audio_bitrate_kbps) if info.audio else None
    main_language = (language(opts.audio_language, "--audio-language") if opts.audio_language
                     else languages.from_stream(info.audio[0].language) if info.audio
                     else None)  # fmt: skip
    return Plan(info=info, outputs=outputs, timeline=timeline, audio=audio,
                preset=opts.preset, ladder_name=ladder_name, codecs=tuple(opts.codecs),
                notes=notes, audio_language=main_language,
                alternates=named_tracks(opts.audio_tracks, "--audio-track"),
                subtitles=named_tracks(opts.subtitles, "--subtitles"))  # fmt: skip


def analyse(source: Path, info: MediaInfo, opts: PublishOptions, workdir: Path,
            progress: Progress | None = None) -> PerTitle:  # fmt: skip
    """The per-title rate-quality analysis of ``source`` (its work files in ``workdir``)."""
    from reelforge.video.pertitle import analyse as run_analysis

    progress = progress or NullProgress()
    video = info.video[0]
    timeline = plan(info, opts).timeline
    update = progress.stage("per-title analysis", 3, "steps")
    return run_analysis(source, video, info.duration, workdir, preset=opts.preset,
                        target_vmaf=opts.target_vmaf,
                        keyframe_interval=timeline.keyframe_interval, on_step=update)  # fmt: skip


# --- encode -----------------------------------------------------------------------------


class EncodeReport(BaseModel):
    seconds: float
    speed_x_realtime: float
    start: float | None = None
    duration: float | None = None


@dataclass
class Encoded:
    """The encoder's output: one single-track fragmented MP4 per track, in a work folder.
    Timestamps start at zero (for a range: at the range's start, which is time zero)."""

    video: dict[str, Path]  # rendition name -> file
    audio: Path | None
    seconds: float
    media_seconds: float  # how much of the source was encoded
    start: float | None = None
    duration: float | None = None
    alternates: dict[str, Path] = field(default_factory=dict)  # language -> audio file
    prepared: list[PreparedAudio] = field(default_factory=list)  # their loudness plans
    chunked: Chunked | None = None  # a chunked encode's chunks (video is empty until joined)

    @property
    def report(self) -> EncodeReport:
        return EncodeReport(seconds=round(self.seconds, 3),
                            speed_x_realtime=round(self.speed, 3), start=self.start,
                            duration=self.duration)  # fmt: skip

    @property
    def speed(self) -> float:
        return self.media_seconds / max(self.seconds, 1e-6)


def chunk_timeline(timeline: Timeline, start: float) -> Timeline:
    """The timeline of a range that starts at ``start`` seconds: the whole timeline for 0,
    else the regular grid (a range must start on a segment boundary after the opening, so
    its keyframes, counted from its own start, fall where the whole title's do)."""
    if start <= 0:
        return timeline
    grid = (start - timeline.opening_end) / timeline.segment_duration
    if start < timeline.opening_end - 1e-6 or abs(grid - round(grid)) > 1e-6:
        raise ValueError(f"a range must start at 0 or on a segment boundary after the "
                         f"opening ({timeline.describe()}), not at {start:g} s")  # fmt: skip
    return Timeline(timeline.segment_duration, ())


def encode(
    source: Path,
    plan: Plan,
    workdir: Path,
    *,
    start: float | None = None,
    duration: float | None = None,
    audio: bool | None = None,
    progress: Progress | None = None,
) -> Encoded:
    """Encode every video output (and the audio) in one ffmpeg run into ``workdir``.

    ``start``/``duration`` (seconds) encode only that range: the decode is seeked to the
    exact start (frame-accurate: no stream copy, whose cuts fall on the source's keyframes)
    and the range's keyframes keep to the title's grid (see :func:`chunk_timeline`).
    ``audio``: None encodes the audio for a whole-title encode only (audio is encoded
    once, whole, never per range)."""
    progress = progress or NullProgress()
    video = plan.video
    ranged = start is not None or duration is not None
    begin = start or 0.0
    length = duration if duration is not None else max(0.0, plan.duration - begin)
    length = min(length, max(0.0, plan.duration - begin))
    with_audio = (not ranged) if audio is None else audio
    t0 = time.monotonic()
    prepared: list[PreparedAudio] = []
    if with_audio and plan.audio is not None and plan.alternates:
        from reelforge.video.alternates import prepare

        update = progress.stage("loudness", len(plan.alternates), "tracks")
        for k, (tag, path) in enumerate(plan.alternates):
            prepared.append(prepare(path, tag, workdir, duration=plan.duration))
            update(k + 1)
    total = round(length * video.frame_rate) if video else round(length * 100)
    fps = video.frame_rate if video else 100.0
    update = progress.stage("encode", total, "frames")
    encoded = encode_ladder(
        source,
        plan.info,
        plan.outputs,
        workdir,
        timeline=chunk_timeline(plan.timeline, begin),
        preset=plan.preset,
        audio=plan.audio if with_audio else None,
        on_progress=lambda s: update(min(total, s * fps)),
        start=start,
        duration=duration,
        alternates=prepared,
    )
    update(total)
    return Encoded(video=encoded.video, audio=encoded.audio, seconds=time.monotonic() - t0,
                   media_seconds=length, start=start, duration=duration,
                   alternates=encoded.alternates, prepared=prepared)  # fmt: skip


@dataclass
class Chunked:
    """A chunked encode's video: the chunks' results in ``folder`` (still to be joined),
    the CRF each rendition was encoded at, and where the time went."""

    specs: list[ChunkSpec]
    results: list[ChunkResult]
    folder: Path
    crfs: dict[str, float]
    chunk_seconds: float
    workers: int
    calibration_seconds: float
    chunks_seconds: float

    def report(self) -> dict:
        """The report's ``chunks`` entry (JSON-ready)."""
        return {
            "chunk_seconds": self.chunk_seconds,
            "count": len(self.results),
            "workers": self.workers,
            "rate_control": "capped-crf",
            "crf": dict(self.crfs),
            "calibration_seconds": round(self.calibration_seconds, 3),
            "chunks_seconds": round(self.chunks_seconds, 3),
            "chunks": [{"index": r.index, "start": r.start, "end": r.end,
                        "first_segment": r.first_segment, "frames": r.frames,
                        "seconds": r.seconds} for r in self.results],
        }  # fmt: skip


def encode_chunked(
    source: Path,
    plan: Plan,
    workdir: Path,
    *,
    chunk_seconds: float,
    runner: ChunkRunner | None = None,
    progress: Progress | None = None,
) -> Encoded:
    """Encode the video in chunks of about ``chunk_seconds`` on the segment grid (see
    :mod:`reelforge.video.chunks`) through ``runner`` (default: a local process pool, one
    worker per CPU), every rendition with capped CRF at the CRF that
    :mod:`reelforge.video.calibrate` finds for its bitrate on this title, and the audio once,
    whole, as :func:`encode` does. The chunks stay in ``workdir`` until :func:`package`
    joins them. A source without video is encoded as :func:`encode` would."""
    from dataclasses import replace

    from reelforge.video import calibrate, chunks

    if plan.video is None or not plan.outputs:
        return encode(source, plan, workdir, progress=progress)
    progress = progress or NullProgress()
    runner = runner or chunks.LocalRunner()
    t0 = time.monotonic()
    update = progress.stage("rate calibration", 1, "steps")
    crfs = calibrate.calibrate(source, plan.info, plan.outputs, plan.timeline, plan.preset,
                               workdir)  # fmt: skip
    update(1)
    calibrated = time.monotonic() - t0
    shared = chunks.ChunkEncode(
        source=str(source.absolute()), info=plan.info,
        outputs=[chunks.ChunkOutput(rendition=o.rendition, deep=o.deep)
                 for o in calibrate.with_crfs(plan.outputs, crfs)],
        segment_duration=plan.timeline.segment_duration, opening=list(plan.timeline.opening),
        preset=plan.preset, threads=1 if runner.workers > 1 else None,
    )  # fmt: skip
    specs = chunks.plan_chunks(plan.timeline, plan.duration, chunk_seconds, shared)
    folder = workdir / "chunks"
    folder.mkdir(parents=True, exist_ok=True)
    t1 = time.monotonic()
    results = runner.map(specs, folder, progress)
    chunks_seconds = time.monotonic() - t1
    audio = None
    if plan.audio is not None:  # once, whole (with the alternates)
        audio = encode(source, replace(plan, outputs=[]), workdir, progress=progress)
    return Encoded(video={}, audio=audio.audio if audio else None,
                   seconds=time.monotonic() - t0, media_seconds=plan.duration,
                   alternates=audio.alternates if audio else {},
                   prepared=audio.prepared if audio else [],
                   chunked=Chunked(specs=specs, results=results, folder=folder, crfs=crfs,
                                   chunk_seconds=chunk_seconds, workers=min(
                                       runner.workers, len(specs)),
                                   calibration_seconds=calibrated,
                                   chunks_seconds=chunks_seconds))  # fmt: skip


# --- package ----------------------------------------------------------------------------


@dataclass
class Packaged:
    """CMAF tracks written into the output folder, measured (``audio[0]``: the main
    audio, then the alternate languages), and the subtitle tracks."""

    video: list[Track]
    audio: list[Track]
    subtitles: list[TextTrack] = field(default_factory=list)

    @property
    def tracks(self) -> list[Track]:
        return [*self.video, *self.audio]

    @property
    def size(self) -> int:
        return sum(t.size + t.init_size for t in self.tracks)


def package(encoded: Encoded, plan: Plan, out: Path, progress: Progress | None = None) -> Packaged:
    """Cut every encoded track into content-named CMAF segments under ``out``."""
    progress = progress or NullProgress()
    renditions = plan.renditions
    count = len(renditions) + (1 if encoded.audio else 0) + len(encoded.alternates)
    update = progress.stage("package", count + len(plan.subtitles), "tracks")
    video_tracks: list[Track] = []
    joined = {}
    if encoded.chunked is not None:  # join the chunks: no re-encode
        from reelforge.video.chunks import join

        done = join(encoded.chunked.results, encoded.chunked.folder, out,
                    whole_dir=encoded.chunked.folder.parent)  # fmt: skip
        encoded.video.update(done.files)
        joined = {t.id: t for t in done.tracks}
    for i, r in enumerate(renditions):
        track = joined.get(r.name) or package_track(
            encoded.video[r.name], out, track_id=r.name, kind="video",
            timeline=plan.timeline)  # fmt: skip
        track.frame_rate = r.fps
        track.frame_rate_exact = _exact_rate(plan.video, r) if plan.video else ""
        track.target_bitrate = r.bitrate_kbps * 1000
        video_tracks.append(track)
        update(i + 1)
    audio_tracks: list[Track] = []
    if encoded.audio is not None and plan.audio is not None:
        a = package_track(encoded.audio, out, track_id=layout.audio_track_id(
            plan.audio.bitrate_kbps), kind="audio", timeline=plan.timeline)  # fmt: skip
        a.channels = plan.audio.channels
        a.sample_rate = plan.audio.sample_rate
        a.language = plan.audio_language
        a.target_bitrate = plan.audio.bitrate_kbps * 1000
        audio_tracks.append(a)
        update(len(renditions) + 1)
        for tag, path in encoded.alternates.items():
            alt = package_track(path, out, track_id=layout.audio_track_id(
                plan.audio.bitrate_kbps, tag), kind="audio", timeline=plan.timeline)  # fmt: skip
            alt.channels, alt.sample_rate = plan.audio.channels, plan.audio.sample_rate
            alt.language, alt.target_bitrate = tag, a.target_bitrate
            audio_tracks.append(alt)
            update(len(renditions) + len(audio_tracks))
    text_tracks: list[TextTrack] = []
    reference = (video_tracks or audio_tracks or [None])[0]
    for tag, path in plan.subtitles if reference is not None else []:
        from reelforge.video.webvtt import package_subtitles, read_vtt

        text_tracks.append(package_subtitles(read_vtt(path), tag, languages.display_name(tag),
                                             reference, out))  # fmt: skip
        update(count + len(text_tracks))
    return Packaged(video=video_tracks, audio=audio_tracks, subtitles=text_tracks)


def _exact_rate(video, r: ladder.Rendition) -> str:
    num, den = (int(x) for x in video.frame_rate_exact.split("/"))
    if r.fps_filter and r.fps_filter.startswith("framestep="):
        den *= int(r.fps_filter.split("=")[1])
    elif r.fps_filter:
        return f"{r.fps:g}"
    g = math.gcd(num, den)
    return f"{num // g}/{den // g}" if den // g != 1 else str(num // g)


# --- extras -----------------------------------------------------------------------------

POSTER_PREVIEW, POSTER, SPRITES, FALLBACK, QUALITY, PLOT = (
    "poster_preview", "poster", "sprites", "fallback", "quality", "rate_quality_plot")  # fmt: skip
EXTRAS = (POSTER_PREVIEW, POSTER, SPRITES, FALLBACK, PLOT)  # what :func:`extras` makes


@dataclass
class ExtrasResult:
    """What :func:`extras` wrote: the report's file entries, seconds per extra, and the
    extras that did not apply (name -> why)."""

    files: dict[str, Any] = field(default_factory=dict)  # extra name -> the report's value
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass
class ExtrasContext:
    """What extras are made from: the source, its plan, the encoded and packaged tracks,
    the per-title hull and the VMAF points (for the plot), and where the poster frame was
    found (the preview chooses it, the poster takes the source's frame there)."""

    source: Path
    plan: Plan
    encoded: Encoded
    packaged: Packaged
    thumbnail_interval: float | None = None
    points: list[RateQualityPoint] = field(default_factory=list)
    hull: list[RateQualityPoint] = field(default_factory=list)
    poster_time: float | None = None


def applies(name: str, ctx: ExtrasContext) -> str | None:
    """None when the extra ``name`` can be made for ``ctx``, else why not."""
    has_video = ctx.plan.video is not None and bool(ctx.packaged.video)
    if name in (POSTER_PREVIEW, POSTER, SPRITES, QUALITY) and not has_video:
        return "no video"
    if name == PLOT and not ctx.points:
        return "no VMAF scores"
    return None


def extras(names: Iterable[str], ctx: ExtrasContext, out: Path, workdir: Path) -> ExtrasResult:
    """Make each named extra (of :data:`EXTRAS`) for ``ctx`` and put its files into
    ``out``: built in ``workdir``, then renamed into place (index files last, so a reader
    never finds an index naming a missing sheet). An extra that does not apply (no video
    for a poster, no scores for the plot) is skipped. A failure leaves none of that
    extra's files in ``out`` and propagates."""
    result = ExtrasResult()
    for name in names:
        why = applies(name, ctx)
        if why is not None:
            result.skipped[name] = why
            continue
        t0 = time.monotonic()
        staging = workdir / f"extra-{name}"
        staging.mkdir(parents=True, exist_ok=True)
        try:
            value, files = _MAKERS[name](ctx, staging)
            _move_into(staging, out, files)
            result.files[name] = value
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        result.seconds[name] = round(time.monotonic() - t0, 3)
    return result


def _move_into(staging: Path, out: Path, files: list[str]) -> None:
    """Rename ``files`` (relative paths, in order) from ``staging`` into ``out``; on
    failure, remove those already moved."""
    moved: list[Path] = []
    try:
        for rel in files:
            dest = out / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            (staging / rel).replace(dest)
            moved.append(dest)
    except BaseException:
        for path in moved:
            with contextlib.suppress(OSError):
                path.unlink()
        raise


Made = tuple[Any, list[str]]  # (the report's value, files to move in, in order)


def _top_size(ctx: ExtrasContext) -> tuple[int, int]:
    top = max(ctx.packaged.video, key=lambda t: t.width * t.height)
    return top.width, top.height


def _preview_rendition(ctx: ExtrasContext) -> Path | None:
    """The smallest SDR rendition at least as wide as the preview (the largest when none
    is): decoding it costs little, and its pictures are tone-mapped and upright."""
    from reelforge.video.thumbnails import PREVIEW_WIDTH

    sdr = [o.rendition for o in ctx.plan.outputs if not o.deep]
    if not sdr:
        return None
    wide = [r for r in sdr if r.width >= PREVIEW_WIDTH]
    pick = (min(wide, key=lambda r: (r.width * r.height, r.codec != "h264")) if wide
            else max(sdr, key=lambda r: r.width * r.height))  # fmt: skip
    return ctx.encoded.video[pick.name]


def _make_poster_preview(ctx: ExtrasContext, staging: Path) -> Made:
    from reelforge.video import thumbnails

    rendition = _preview_rendition(ctx)
    if rendition is not None:
        img, chosen = thumbnails.choose_rendition_frame(rendition, ctx.plan.duration)
    else:
        img, chosen = thumbnails.choose_poster_frame(ctx.source, ctx.plan.video,
                                                     ctx.plan.duration)  # fmt: skip
    ctx.poster_time = chosen.time
    name = thumbnails.write_poster_preview(img, staging)
    return name, [name]


def _make_poster(ctx: ExtrasContext, staging: Path) -> Made:
    from reelforge.video import thumbnails

    video = ctx.plan.video
    img = None
    if ctx.poster_time is not None:  # the preview's frame, from the source
        img = thumbnails.frame_image(ctx.source, video, ctx.poster_time)
    if img is None:
        img, chosen = thumbnails.choose_poster_frame(ctx.source, video, ctx.plan.duration)
        ctx.poster_time = chosen.time
    size = _top_size(ctx)
    if img.size != size:
        img = img.resize(size)
    names = thumbnails.write_poster(img, staging, POSTER_MAX_WIDTH)
    return names, list(names.values())


def _make_sprites(ctx: ExtrasContext, staging: Path) -> Made:
    from reelforge.video import thumbnails

    key = ctx.plan.timeline.keyframe_interval
    interval = ctx.thumbnail_interval or max(key, ctx.plan.duration / 200)
    interval = key * max(1, round(interval / key))
    smallest = min(ctx.plan.renditions, key=lambda r: (r.codec != "h264", r.width * r.height))
    sprites = thumbnails.write_sprites(ctx.encoded.video[smallest.name], staging,
                                       duration=ctx.plan.duration, interval=interval)  # fmt: skip
    return (sprites.vtt, sprites.sheets), [*sprites.sheets, sprites.vtt]


def _make_fallback(ctx: ExtrasContext, staging: Path) -> Made:
    from reelforge.video.fallback import write_fallback

    fallback_video = None
    renditions = ctx.plan.renditions
    reach = [r for r in renditions if r.codec == "h264"] or renditions
    if reach:
        fits = [r for r in reach if r.height <= FALLBACK_MAX_HEIGHT
                and r.bitrate_kbps <= FALLBACK_MAX_KBPS] or [min(
                    reach, key=lambda r: r.bitrate_kbps)]  # fmt: skip
        best = max(fits, key=lambda r: (r.width * r.height, r.bitrate_kbps))
        fallback_video = ctx.encoded.video[best.name]
    name = write_fallback(fallback_video, ctx.encoded.audio, staging, layout.FALLBACK)
    return name, [name]


def _make_plot(ctx: ExtrasContext, staging: Path) -> Made:
    from reelforge.video.bdrate import Point
    from reelforge.video.plot import rate_quality_svg

    by_codec: dict[str, list] = {}
    for p in ctx.points:
        by_codec.setdefault(p.codec, []).append((Point(p.kbps, p.vmaf), f"{p.height}p"))
    hull_points = [Point(h.kbps, h.vmaf) for h in ctx.hull]
    svg = rate_quality_svg(by_codec, f"{ctx.source.name}: bitrate against VMAF",
                           hull_points or None)  # fmt: skip
    (staging / layout.RATE_QUALITY_PLOT).write_text(svg, encoding="utf-8")
    return layout.RATE_QUALITY_PLOT, [layout.RATE_QUALITY_PLOT]


_MAKERS: dict[str, Callable[[ExtrasContext, Path], Made]] = {
    POSTER_PREVIEW: _make_poster_preview,
    POSTER: _make_poster,
    SPRITES: _make_sprites,
    FALLBACK: _make_fallback,
    PLOT: _make_plot,
}


def set_files(files: Files, result: ExtrasResult) -> None:
    """Enter ``result``'s files into the report's :class:`Files`."""
    for name, value in result.files.items():
        if name == SPRITES:
            files.thumbnails_vtt, files.sprites = value[0], list(value[1])
        else:
            setattr(files, name, value)


# --- score ------------------------------------------------------------------------------


class Scores(BaseModel):
    """VMAF per rendition name (pooled scores), and how long scoring took."""

    vmaf: dict[str, dict] = {}
    seconds: float | None = None


def _frame_step(fps_filter: str | None) -> int:
    """How many source frames each output frame stands for (``framestep=N``: N, else 1)."""
    if fps_filter and fps_filter.startswith("framestep="):
        return max(1, int(fps_filter.split("=", 1)[1]))
    return 1


def score(source: Path, plan: Plan, encoded: Encoded, workdir: Path,
          progress: Progress | None = None, subsample: int | None = None) -> Scores:  # fmt: skip
    """VMAF per rendition at the source's display size, once per rendition, on every
    ``subsample``-th frame (None: :func:`~reelforge.media.quality.choose_subsample` up to
    :data:`VMAF_STEP`); 10-bit outputs of an HDR source are scored against the untouched
    (not tone-mapped) source in the same way, which keeps them comparable with each other
    but not with the SDR renditions."""
    from reelforge.media import quality

    progress = progress or NullProgress()
    if plan.video is None or not plan.outputs:
        return Scores()
    t0 = time.monotonic()
    video = plan.video
    frames = video.frames
    if subsample is None:  # on the fewest frames a rendition has (framestep halves them)
        fewest = min(frames // _frame_step(o.rendition.fps_filter) for o in plan.outputs)
        subsample = quality.choose_subsample(fewest, VMAF_STEP)
    width = video.display_width - video.display_width % 2
    height = video.display_height - video.display_height % 2
    groups = [[o for o in plan.outputs if not o.deep], [o for o in plan.outputs if o.deep]]
    groups = [g for g in groups if g]
    update = progress.stage("quality (VMAF)", frames * len(groups), "frames")
    result: dict[str, dict] = {}
    for k, group in enumerate(groups):
        chain = [*source_filters(video), *to_bt709(video)] if not group[0].deep else (
            base_filters(video))  # fmt: skip
        scores = quality.vmaf_many(
            source,
            [quality.Distorted(encoded.video[o.rendition.name], o.rendition.fps_filter)
             for o in group],
            width=width, height=height, workdir=workdir, reference_filters=chain,
            subsample=subsample,
            on_progress=lambda s, k=k: update(min(frames * (k + 1),
                                                  frames * k + s * video.frame_rate)),
        )  # fmt: skip
        result.update({o.rendition.name: s.as_dict()
                       for o, s in zip(group, scores, strict=True)})  # fmt: skip
    update(frames * len(groups))
    return Scores(vmaf=result, seconds=time.monotonic() - t0)


def rate_quality(packaged: Packaged, scores: Scores) -> list[RateQualityPoint]:
    """Each scored rendition on the rate-quality plane (measured kb/s, VMAF mean)."""
    return [RateQualityPoint(codec=t.id.split("-")[0], name=t.id, width=t.width,
                             height=t.height, kbps=round(t.average_bitrate / 1000, 1),
                             vmaf=scores.vmaf[t.id]["mean"])
            for t in packaged.video if t.id in scores.vmaf]  # fmt: skip


def hull_points(analysis: PerTitle | None) -> list[RateQualityPoint]:
    return [RateQualityPoint(codec="h264", name=f"crf{h.crf}-{h.width}x{h.height}",
                             width=h.width, height=h.height, kbps=round(h.kbps, 1),
                             vmaf=round(h.vmaf, 3))
            for h in (analysis.hull if analysis else [])]  # fmt: skip


# --- manifests and report ---------------------------------------------------------------


def manifests(packaged: Packaged, plan: Plan, out: Path) -> tuple[str, str]:
    """Write every track's playlists, then the MPD and the multivariant playlist (last:
    nothing names a file before it exists); returns their names (HLS, DASH)."""
    for track in [*packaged.tracks, *packaged.subtitles]:
        hls.write_track_playlists(out, track)
    write_text_atomic(out / layout.MPD, dash.build_mpd(
        packaged.video, packaged.audio, min_buffer=plan.timeline.segment_duration,
        subtitles=packaged.subtitles))  # fmt: skip
    write_text_atomic(out / layout.MASTER, hls.multivariant_playlist(
        packaged.video, packaged.audio, packaged.subtitles))  # fmt: skip
    return layout.MASTER, layout.MPD


def build_report(
    *,
    source: Path,
    output: Path,
    plan: Plan,
    opts: PublishOptions,
    encoded: Encoded,
    packaged: Packaged,
    files: Files,
    scores: Scores,
    analysis: PerTitle | None,
    started: float,
    hull: list[RateQualityPoint] | None = None,
) -> PublishReport:
    """The publish report, measured from the files written."""
    speed = encoded.speed
    points = rate_quality(packaged, scores)
    main = packaged.audio[0] if packaged.audio else None
    loudness = {a.language: a.as_dict() for a in encoded.prepared}
    notes = [*plan.notes, *(n for a in encoded.prepared for n in a.notes)]
    notes += [f"{t.language} subtitles: {t.dropped} cues start after the video ends; left out"
              for t in packaged.subtitles if t.dropped]  # fmt: skip
    renditions = [rendition_report(t, scores.vmaf.get(t.id), speed, loudness.get(t.language)
                                   if t.kind == "audio" and t is not main else None)
                  for t in packaged.tracks]  # fmt: skip
    subtitles = [SubtitleReport(language=t.language, name=t.name,
                                playlist=t.uri(layout.MEDIA_PLAYLIST), sidecar=t.uri(t.sidecar),
                                segments=len(t.segments), cues=t.cues, dropped=t.dropped)
                 for t in packaged.subtitles]  # fmt: skip
    return PublishReport(
        reelforge_version=__version__,
        input=str(source),
        output=str(output),
        settings=plan.settings(opts.audio_bitrate_kbps),
        source=plan.info.model_dump(),
        renditions=renditions,
        subtitles=subtitles,
        files=files,
        rate_quality=points,
        hull=hull if hull is not None else hull_points(analysis),
        per_title=analysis.as_dict() if analysis else None,
        totals=Totals(
            size_bytes=packaged.size,
            media_duration=round(plan.duration, 3),
            encode_seconds=round(encoded.seconds, 3),
            encode_speed_x_realtime=round(speed, 3),
            quality_seconds=round(scores.seconds, 3) if scores.seconds else None,
            analysis_seconds=round(analysis.analysis_seconds, 3) if analysis else None,
            wall_seconds=round(time.monotonic() - started, 3),
        ),
        notes=notes,
        chunks=encoded.chunked.report() if encoded.chunked is not None else None,
    )


def write_report(out: Path, report: PublishReport) -> None:
    """Write (or replace) ``report.json`` atomically."""
    write_text_atomic(out / layout.REPORT, report.model_dump_json(indent=2))


def rendition_report(t: Track, vmaf: dict | None, speed: float,
                     loudness: dict | None = None) -> RenditionReport:  # fmt: skip
    avg, peak = t.average_bitrate, t.peak_bitrate
    return RenditionReport(
        name=t.id,
        kind=t.kind,
        codec=t.codec,
        width=t.width,
        height=t.height,
        frame_rate=t.frame_rate,
        channels=t.channels,
        sample_rate=t.sample_rate,
        target_kbps=t.target_bitrate // 1000,
        size_bytes=t.size + t.init_size,
        segments=len(t.segments),
        duration=round(t.duration, 3),
        average_kbps=round(avg / 1000, 1),
        peak_kbps=round(peak / 1000, 1),
        peak_to_average=round(peak / avg, 3) if avg else 0.0,
        playlist=t.uri(layout.MEDIA_PLAYLIST),
        vmaf=vmaf,
        encode_speed_x_realtime=round(speed, 3),
        language=t.language if t.kind == "audio" else None,
        loudness=loudness,
    )
