"""The publish step: one video (or audio) file in, an adaptive CMAF stream out.

Contract: :func:`publish` probes the input, plans the ladder, encodes every rendition in one
ffmpeg run, cuts CMAF segments with content-hashed names, writes HLS and DASH manifests
(last), a poster, scrubbing thumbnails, a fast-start MP4 fallback and ``report.json``. All of
it is built in a temporary sibling of ``output`` and renamed into place at the end
(:func:`reelforge.outputs.output_folder`): a failed or interrupted publish leaves nothing
behind, the input is only ever read, an output folder holding the input is refused, and
``force`` replaces only a previous publish output.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from reelforge.errors import InputError
from reelforge.fsutil import scratch_dir
from reelforge.media.probe import probe
from reelforge.outputs import PUBLISH, check_apart, check_target, output_folder, target_path
from reelforge.progress import NullProgress, Progress
from reelforge.video import ladder, stages
from reelforge.video.codecs import PRESETS, parse_codecs
from reelforge.video.report import Files, PublishReport
from reelforge.video.timeline import check_opening


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


def validate_options(opts: PublishOptions) -> None:
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


def publish(
    source: str | Path,
    output: str | Path,
    options: PublishOptions | None = None,
    progress: Progress | None = None,
) -> PublishReport:
    """Publish ``source`` into the folder ``output``; returns the report also written there."""
    opts = options or PublishOptions()
    progress = progress or NullProgress()
    source, output = Path(source), Path(output)
    started = time.monotonic()
    validate_options(opts)
    check_apart(output, [source], folder=True)
    check_target(output, PUBLISH, force=opts.force)
    info = probe(source)
    if not info.video and not info.audio:
        raise InputError("has no video or audio stream", path=source)
    if info.duration <= 0:
        raise InputError("has no measurable duration", path=source)
    plan = stages.plan(info, opts)

    with (
        output_folder(output, PUBLISH, force=opts.force, inputs=[source]) as out,
        scratch_dir(target_path(output)) as work,
    ):
        analysis = None
        if opts.per_title and plan.video is not None:
            analysis = stages.analyse(source, info, opts, work, progress)
            plan = stages.plan(info, opts, analysis)
        encoded = stages.encode(source, plan, work, progress=progress)
        packaged = stages.package(encoded, plan, out, progress)

        wanted = [stages.POSTER_PREVIEW, stages.POSTER] if opts.poster else []
        wanted += [stages.SPRITES] if opts.thumbnails else []
        wanted += [stages.FALLBACK] if opts.fallback else []
        ctx = stages.ExtrasContext(source, plan, encoded, packaged,
                                   thumbnail_interval=opts.thumbnail_interval,
                                   hull=stages.hull_points(analysis))  # fmt: skip
        files = Files()
        stages.set_files(files, stages.extras(wanted, ctx, out, work))
        scores = stages.score(source, plan, encoded, work, progress) if opts.quality else (
            stages.Scores())  # fmt: skip
        ctx.points = stages.rate_quality(packaged, scores)
        stages.set_files(files, stages.extras([stages.PLOT], ctx, out, work))
        files.hls, files.dash = stages.manifests(packaged, plan, out)
        report = stages.build_report(source=source, output=output, plan=plan, opts=opts,
                                     encoded=encoded, packaged=packaged, files=files,
                                     scores=scores, analysis=analysis,
                                     started=started)  # fmt: skip
        stages.write_report(out, report)
    return report
