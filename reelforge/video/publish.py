"""The publish step: one video (or audio) file in, an adaptive CMAF stream out.

Contract: :func:`publish` probes the input, plans the ladder, encodes every rendition in one
ffmpeg run and cuts CMAF segments with content-hashed names; with the HLS and DASH
manifests (written last, so nothing names a missing file), a small poster preview and a
first ``report.json`` (``state: "playable"``) they are built in a hidden temporary sibling
of ``output`` and renamed into place: from that instant the stream is complete and valid,
and ``on_playable`` is called. Until then a failure or an interrupt leaves nothing behind.

The slow extras follow in the placed folder while its lock is still held: the poster
(AVIF, WebP, JPEG), the MP4 fallback, the scrubbing sprites, VMAF and the rate-quality
plot. Each is built in a work folder and its files renamed in (index files last); after
each, ``report.json`` is replaced atomically. An extra that fails is recorded (``extras``:
``failed`` and why) and the next one goes on; an interrupt records the extras left out as
``interrupted`` and raises :class:`~reelforge.errors.Cancelled`, the stream left in place.
The last report is ``state: "complete"``, or ``"incomplete"`` when some extra is missing;
``totals.playable_seconds`` and ``totals.complete_seconds`` say when each was reached.

The input is only ever read, an output folder holding the input is refused, and ``force``
replaces only a previous publish output (see :mod:`reelforge.outputs`).

With ``chunk_seconds``, the video is encoded in chunks of about that many seconds on the
segment grid, side by side (``runner``: a local process pool by default; see
:mod:`reelforge.video.chunks`), with capped CRF, and joined without re-encoding; the audio
is encoded once, whole. Everything after the encode is the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from reelforge.errors import Cancelled, InputError, ReelforgeError
from reelforge.fsutil import scratch_dir
from reelforge.media.probe import probe
from reelforge.outputs import PUBLISH, check_apart, check_target, staged_output_folder, target_path
from reelforge.progress import NullProgress, Progress
from reelforge.video import ladder, stages
from reelforge.video.codecs import PRESETS, parse_codecs
from reelforge.video.report import ExtraStatus, Files, PublishReport
from reelforge.video.timeline import check_opening

if TYPE_CHECKING:
    from reelforge.video.chunks import ChunkRunner

T = TypeVar("T")
TrackFiles = dict[str, str | Path] | list[tuple[str, str | Path]]


@dataclass
class PublishOptions:
    """Everything a publish can be asked to do; the defaults are the recommended ones."""

    rungs: list[ladder.Rung] | None = None  # None: Apple's H.264 ladder
    ladder_name: str = "apple-hls-h264"
    codecs: tuple[str, ...] = ("h264",)
    per_title: bool = False  # rungs from this title's own rate-quality hull
    target_vmaf: float = 95.0  # per-title: the top rung's quality
    segment_duration: float = 4.0
    # The first segments' durations (short, so playback starts on a small download);
    # None: 1 s segments for the first 2 s, then back to the grid (see timeline.py).
    start_segments: tuple[float, ...] | None = None
    preset: str = "balanced"
    audio_bitrate_kbps: int = 128
    quality: bool = True
    poster: bool = True
    thumbnails: bool = True
    thumbnail_interval: float | None = None  # None: every keyframe interval, at most ~200
    fallback: bool = True
    force: bool = False
    notes: list[str] = field(default_factory=list)
    # Subtitles and alternate audio: language (BCP 47: en, fr, pt-BR) -> file, as a dict or
    # a list of (language, file) pairs. Subtitles are WebVTT; each audio file becomes an
    # alternate rendition (loudness-normalised, padded or trimmed to the video).
    subtitles: TrackFiles = field(default_factory=dict)
    audio_tracks: TrackFiles = field(default_factory=dict)
    audio_language: str | None = None  # the main audio's language; None: its stream's tag
    # Encode the video in chunks of about this many seconds (whole segments, on the grid),
    # side by side, with capped CRF; None or 0: one encode of the whole title.
    chunk_seconds: float | None = None


def parse_track(text: str, option: str) -> tuple[str, Path]:
    """``"fr=dub.wav"`` -> ``("fr", Path("dub.wav"))`` (the CLI's ``LANG=FILE``)."""
    language, sep, file = text.partition("=")
    if not sep or not language.strip() or not file.strip():
        raise InputError(f"{option} must look like LANG=FILE (e.g. en=subs.vtt), not {text!r}")
    return language.strip(), Path(file.strip())


def validate_options(opts: PublishOptions) -> None:
    """Refuse (one-line :class:`InputError`) options that cannot work; reads no file."""
    stages.named_tracks(opts.subtitles, "--subtitles")
    stages.named_tracks(opts.audio_tracks, "--audio-track")
    if opts.audio_language is not None:
        stages.language(opts.audio_language, "--audio-language")
    parse_codecs(",".join(opts.codecs))
    if opts.preset not in PRESETS:
        raise InputError(f"--preset must be fast, balanced or best, not {opts.preset!r}")
    if not 1.0 <= opts.segment_duration <= 30.0:
        raise InputError(f"--segment-duration must be 1 to 30 s, not {opts.segment_duration:g}")
    check_opening(opts.start_segments or (), opts.segment_duration)
    if not 50 <= opts.target_vmaf <= 100:
        raise InputError(f"--target-vmaf must be 50 to 100, not {opts.target_vmaf:g}")
    if not 16 <= opts.audio_bitrate_kbps <= 512:
        raise InputError("--audio-bitrate must be 16 to 512 kb/s")
    if opts.chunk_seconds and not (opts.segment_duration <= opts.chunk_seconds <= 3600):
        raise InputError(f"--chunk-seconds must be {opts.segment_duration:g} (the segment "
                         f"duration) to 3600 s, not {opts.chunk_seconds:g}")  # fmt: skip


def publish(
    source: str | Path,
    output: str | Path,
    options: PublishOptions | None = None,
    progress: Progress | None = None,
    *,
    on_playable: Callable[[PublishReport], None] | None = None,
    runner: ChunkRunner | None = None,
) -> PublishReport:
    """Publish ``source`` into the folder ``output``; returns the last report written there.
    ``on_playable(report)`` runs once the stream is in place (the output still locked).
    ``runner`` runs the chunks of a chunked publish (``options.chunk_seconds``; default: a
    local process pool)."""
    opts = options or PublishOptions()
    progress = progress or NullProgress()
    source, output = Path(source), Path(output)
    started = time.monotonic()
    validate_options(opts)
    inputs = [source, *(path for _, path in stages.named_tracks(opts.subtitles, "")),
              *(path for _, path in stages.named_tracks(opts.audio_tracks, ""))]  # fmt: skip
    check_apart(output, inputs, folder=True)
    check_target(output, PUBLISH, force=opts.force)
    info = probe(source)
    if not info.video and not info.audio:
        raise InputError("has no video or audio stream", path=source)
    if info.duration <= 0:
        raise InputError("has no measurable duration", path=source)
    plan = stages.plan(info, opts)
    stages.check_track_files(plan)  # every file parses, before anything is written
    timings: dict[str, float] = {"probe": round(time.monotonic() - started, 3)}

    def timed(name: str, fn: Callable[..., T], *args, **kwargs) -> T:
        t0 = time.monotonic()
        try:
            return fn(*args, **kwargs)
        finally:
            timings[name] = round(time.monotonic() - t0, 3)

    with (
        staged_output_folder(output, PUBLISH, force=opts.force, inputs=inputs) as staged,
        scratch_dir(target_path(output)) as work,
    ):
        analysis = None
        if opts.per_title and plan.video is not None:
            analysis = timed("analysis", stages.analyse, source, info, opts, work, progress)
            plan = stages.plan(info, opts, analysis)
        if opts.chunk_seconds:
            encoded = timed("encode", stages.encode_chunked, source, plan, work,
                            chunk_seconds=opts.chunk_seconds, runner=runner,
                            progress=progress)  # fmt: skip
        else:
            encoded = timed("encode", stages.encode, source, plan, work, progress=progress)
        packaged = timed("package", stages.package, encoded, plan, staged.folder, progress)
        extras = _Extras(source, plan, encoded, packaged, opts, work, timings,
                         stages.hull_points(analysis), progress)  # fmt: skip
        extras.run(staged.folder, extras.early)
        t0 = time.monotonic()
        extras.files.hls, extras.files.dash = stages.manifests(packaged, plan, staged.folder)

        def report_now(state: str) -> PublishReport:
            report = stages.build_report(source=source, output=output, plan=plan, opts=opts,
                                         encoded=encoded, packaged=packaged,
                                         files=extras.files, scores=extras.scores,
                                         analysis=analysis, started=started)  # fmt: skip
            report.state, report.extras = state, dict(extras.status)
            report.totals.stage_seconds = dict(timings)
            report.totals.playable_seconds = playable
            return report

        playable = round(time.monotonic() - started, 3)
        report = report_now("playable")
        stages.write_report(staged.folder, report)
        timings["manifests"] = round(time.monotonic() - t0, 3)
        out = staged.place()  # the stream is complete and valid from here on
        if on_playable is not None:
            on_playable(report)
        try:
            for name in extras.late:
                extras.run(out, [name])
                stages.write_report(out, report_now("playable"))
        except (KeyboardInterrupt, Cancelled) as exc:
            extras.interrupted()
            stages.write_report(out, report_now("incomplete"))
            if isinstance(exc, Cancelled):
                raise
            raise Cancelled(
                "interrupted after the stream was published; it plays, and its "
                "report.json lists the extras left out",
                path=output,
            ) from exc
        missing = [n for n, s in extras.status.items() if s.state not in ("done", "skipped")]
        report = report_now("incomplete" if missing else "complete")
        report.totals.complete_seconds = report.totals.wall_seconds
        stages.write_report(out, report)
    return report


class _Extras:
    """The extras a publish was asked for, run one by one, each one's outcome recorded."""

    def __init__(self, source, plan, encoded, packaged, opts: PublishOptions, work: Path,
                 timings: dict[str, float], hull, progress: Progress) -> None:  # fmt: skip
        self.ctx = stages.ExtrasContext(source, plan, encoded, packaged,
                                        thumbnail_interval=opts.thumbnail_interval,
                                        hull=hull)  # fmt: skip
        self.work, self.timings, self.progress = work, timings, progress
        self.files = Files()
        self.scores = stages.Scores()
        # cheap and shown by the player page before anything loads: before playable
        self.early = [stages.POSTER_PREVIEW] if opts.poster else []
        self.late = [*([stages.POSTER] if opts.poster else []),
                     *([stages.FALLBACK] if opts.fallback else []),
                     *([stages.SPRITES] if opts.thumbnails else []),
                     *([stages.QUALITY, stages.PLOT] if opts.quality else [])]  # fmt: skip
        self.status: dict[str, ExtraStatus] = {}
        for name in [*self.early, *self.late]:
            why = stages.applies(name, self.ctx) if name != stages.PLOT else None
            self.status[name] = (ExtraStatus(state="skipped", reason=why) if why
                                 else ExtraStatus(state="pending"))  # fmt: skip

    def run(self, out: Path, names: list[str]) -> None:
        for name in names:
            if self.status[name].state != "pending":
                continue
            t0 = time.monotonic()
            try:
                if name == stages.QUALITY:
                    self.scores = stages.score(self.ctx.source, self.ctx.plan, self.ctx.encoded,
                                               self.work, self.progress)  # fmt: skip
                    self.ctx.points = stages.rate_quality(self.ctx.packaged, self.scores)
                else:
                    result = stages.extras([name], self.ctx, out, self.work)
                    if name in result.skipped:
                        self.status[name] = ExtraStatus(state="skipped",
                                                        reason=result.skipped[name])  # fmt: skip
                        continue
                    stages.set_files(self.files, result)
            except Exception as exc:
                if isinstance(exc, Cancelled):
                    raise
                self.status[name] = ExtraStatus(state="failed", reason=_reason(exc, self.work),
                                                seconds=_since(t0))  # fmt: skip
                continue
            finally:
                self.timings[name] = _since(t0)
            self.status[name] = ExtraStatus(state="done", seconds=_since(t0))

    def interrupted(self) -> None:
        for name, status in self.status.items():
            if status.state == "pending":
                self.status[name] = ExtraStatus(state="interrupted", reason="interrupted")


def _since(t0: float) -> float:
    return round(time.monotonic() - t0, 3)


def _reason(exc: Exception, work: Path) -> str:
    """Why an extra failed, in one line. Files in the run's work folder (an encoded
    rendition an extra was made from) are named without the folder: it is gone by the time
    anyone reads the report."""
    text = str(exc) if isinstance(exc, ReelforgeError | OSError) else (
        f"{type(exc).__name__}: {exc}")  # fmt: skip
    text = text.replace(f"{work.absolute()}/", "")
    return text.splitlines()[0] if text else type(exc).__name__
