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

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from reelforge import __version__
from reelforge.errors import InputError
from reelforge.fsutil import scratch_dir, write_text_atomic
from reelforge.media.probe import MediaInfo, probe
from reelforge.outputs import PUBLISH, check_apart, check_target, output_folder, target_path
from reelforge.progress import NullProgress, Progress
from reelforge.video import dash, hls, ladder
from reelforge.video.codecs import PRESETS, parse_codecs
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
    Totals,
)
from reelforge.video.timeline import Timeline, check_opening, default_opening

MASTER = "master.m3u8"
MPD = "manifest.mpd"
REPORT = "report.json"
FALLBACK_MAX_HEIGHT = 720
FALLBACK_MAX_KBPS = 3000  # a progressive file cannot adapt: keep it playable on modest links
POSTER_MAX_WIDTH = 1920
VMAF_MAX_FRAMES = 300  # per rendition; longer inputs are scored on every n-th frame


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
    video = info.video[0] if info.video else None
    outputs = _plan_outputs(video, opts) if video is not None else []
    renditions = [o.rendition for o in outputs]
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
    timeline = Timeline(opts.segment_duration, default_opening(opts.segment_duration)
                        if opts.start_segments is None else opts.start_segments)  # fmt: skip
    key_interval = timeline.keyframe_interval
    audio_settings = AudioSettings(bitrate_kbps=opts.audio_bitrate_kbps) if info.audio else None

    with (
        output_folder(output, PUBLISH, force=opts.force, inputs=[source]) as out,
        scratch_dir(target_path(output)) as work,
    ):
        analysis = None
        if opts.per_title and video is not None:
            from reelforge.video.pertitle import analyse

            update = progress.stage("per-title analysis", 3, "steps")
            analysis = analyse(source, video, info.duration, work, preset=opts.preset,
                               target_vmaf=opts.target_vmaf, keyframe_interval=key_interval,
                               on_step=update)  # fmt: skip
            opts = replace(opts, rungs=analysis.ladder_rungs(), ladder_name="per-title")
            outputs = _plan_outputs(video, opts)
            renditions = [o.rendition for o in outputs]
            notes += analysis.notes
        total_frames = video.frames if video else round(info.duration * 100)
        fps = video.frame_rate if video else 100.0
        update = progress.stage("encode", total_frames, "frames")
        t0 = time.monotonic()
        encoded = encode_ladder(
            source,
            info,
            outputs,
            work,
            timeline=timeline,
            preset=opts.preset,
            audio=audio_settings,
            on_progress=lambda s: update(min(total_frames, s * fps)),
        )
        update(total_frames)
        encode_seconds = time.monotonic() - t0

        update = progress.stage("package", len(renditions) + (1 if encoded.audio else 0), "tracks")
        video_tracks: list[Track] = []
        for i, r in enumerate(renditions):
            track = package_track(
                encoded.video[r.name],
                out,
                track_id=r.name,
                kind="video",
                timeline=timeline,
            )
            track.frame_rate = r.fps
            track.frame_rate_exact = _exact_rate(video, r) if video else ""
            track.target_bitrate = r.bitrate_kbps * 1000
            video_tracks.append(track)
            update(i + 1)
        audio_tracks: list[Track] = []
        if encoded.audio is not None and audio_settings is not None:
            a = package_track(
                encoded.audio,
                out,
                track_id=f"aac-{audio_settings.bitrate_kbps}k",
                kind="audio",
                timeline=timeline,
            )
            a.channels = audio_settings.channels
            a.sample_rate = audio_settings.sample_rate
            a.language = _language(info)
            a.target_bitrate = audio_settings.bitrate_kbps * 1000
            audio_tracks.append(a)
            update(len(renditions) + 1)

        files = Files()
        if video is not None and (opts.poster or opts.thumbnails):
            from reelforge.video import thumbnails  # Pillow and numpy: only when needed
        if video is not None and opts.poster:
            img, _ = thumbnails.choose_poster_frame(source, video, info.duration)
            top = max(video_tracks, key=lambda t: t.width * t.height)
            img = (
                img.resize((top.width, top.height)) if img.size != (top.width, top.height) else img
            )
            files.poster = thumbnails.write_poster(img, out, POSTER_MAX_WIDTH)
            files.poster_preview = thumbnails.write_poster_preview(img, out)
        if video is not None and opts.thumbnails and video_tracks:
            interval = opts.thumbnail_interval or max(key_interval, info.duration / 200)
            interval = key_interval * max(1, round(interval / key_interval))
            smallest = min(renditions, key=lambda r: (r.codec != "h264", r.width * r.height))
            sprites = thumbnails.write_sprites(
                encoded.video[smallest.name], out, duration=info.duration, interval=interval
            )
            files.thumbnails_vtt = sprites.vtt
            files.sprites = sprites.sheets
        if opts.fallback:
            from reelforge.video.fallback import write_fallback

            fallback_video = None
            reach = [r for r in renditions if r.codec == "h264"] or renditions
            if reach:
                fits = [r for r in reach if r.height <= FALLBACK_MAX_HEIGHT
                        and r.bitrate_kbps <= FALLBACK_MAX_KBPS] or [min(
                            reach, key=lambda r: r.bitrate_kbps)]  # fmt: skip
                best = max(fits, key=lambda r: (r.width * r.height, r.bitrate_kbps))
                fallback_video = encoded.video[best.name]
            files.fallback = write_fallback(fallback_video, encoded.audio, out, "fallback")

        vmaf: dict[str, dict] = {}
        quality_seconds = None
        if opts.quality and video is not None and renditions:
            t1 = time.monotonic()
            vmaf = _score(source, info, outputs, encoded.video, work, progress)
            quality_seconds = time.monotonic() - t1

        points = [RateQualityPoint(codec=t.id.split("-")[0], name=t.id, width=t.width,
                                   height=t.height, kbps=round(t.average_bitrate / 1000, 1),
                                   vmaf=vmaf[t.id]["mean"])
                  for t in video_tracks if t.id in vmaf]  # fmt: skip
        hull = [RateQualityPoint(codec="h264", name=f"crf{h.crf}-{h.width}x{h.height}",
                                 width=h.width, height=h.height, kbps=round(h.kbps, 1),
                                 vmaf=round(h.vmaf, 3))
                for h in (analysis.hull if analysis else [])]  # fmt: skip
        if points:
            files.rate_quality_plot = _write_plot(out, points, source.name, hull)

        # Manifests last: nothing references a file before it exists.
        for track in [*video_tracks, *audio_tracks]:
            hls.write_track_playlists(out, track)
        write_text_atomic(out / MPD, dash.build_mpd(
            video_tracks, audio_tracks, min_buffer=opts.segment_duration))  # fmt: skip
        write_text_atomic(out / MASTER, hls.multivariant_playlist(video_tracks, audio_tracks))
        files.hls, files.dash = MASTER, MPD

        report = PublishReport(
            reelforge_version=__version__,
            input=str(source),
            output=str(output),
            settings=Settings(
                segment_duration=opts.segment_duration,
                start_segments=list(timeline.opening),
                keyframe_interval=round(key_interval, 6),
                preset=opts.preset,
                audio_bitrate_kbps=opts.audio_bitrate_kbps,
                ladder=opts.ladder_name,
                codecs=list(opts.codecs),
            ),
            source=info.model_dump(),
            renditions=[
                _rendition_report(t, vmaf.get(t.id), info.duration / max(encode_seconds, 1e-6))
                for t in video_tracks + audio_tracks
            ],
            files=files,
            rate_quality=points,
            hull=hull,
            per_title=analysis.as_dict() if analysis else None,
            totals=Totals(
                size_bytes=sum(t.size + t.init_size for t in video_tracks + audio_tracks),
                media_duration=round(info.duration, 3),
                encode_seconds=round(encode_seconds, 3),
                encode_speed_x_realtime=round(info.duration / max(encode_seconds, 1e-6), 3),
                quality_seconds=round(quality_seconds, 3) if quality_seconds else None,
                analysis_seconds=round(analysis.analysis_seconds, 3) if analysis else None,
                wall_seconds=round(time.monotonic() - started, 3),
            ),
            notes=notes,
        )
        write_text_atomic(out / REPORT, report.model_dump_json(indent=2))
    return report


def _exact_rate(video, r: ladder.Rendition) -> str:
    num, den = (int(x) for x in video.frame_rate_exact.split("/"))
    if r.fps_filter and r.fps_filter.startswith("framestep="):
        den *= int(r.fps_filter.split("=")[1])
    elif r.fps_filter:
        return f"{r.fps:g}"
    g = math.gcd(num, den)
    return f"{num // g}/{den // g}" if den // g != 1 else str(num // g)


def _language(info: MediaInfo) -> str | None:
    lang = info.audio[0].language if info.audio else None
    return lang if lang and lang != "und" else None


def _write_plot(out: Path, points: list[RateQualityPoint], title: str,
                hull: list[RateQualityPoint] | None = None) -> str:  # fmt: skip
    from reelforge.video.bdrate import Point
    from reelforge.video.plot import rate_quality_svg

    by_codec: dict[str, list] = {}
    for p in points:
        by_codec.setdefault(p.codec, []).append((Point(p.kbps, p.vmaf), f"{p.height}p"))
    hull_points = [Point(h.kbps, h.vmaf) for h in hull or []]
    svg = rate_quality_svg(by_codec, f"{title}: bitrate against VMAF", hull_points or None)
    name = "rate-quality.svg"
    write_text_atomic(out / name, svg)
    return name


def _plan_outputs(video, opts: PublishOptions) -> list[Output]:
    """Every codec's renditions: the ladder's resolutions at the codec's share of the
    H.264 bitrates (see :mod:`reelforge.video.codecs`)."""
    rungs = opts.rungs or list(ladder.APPLE_H264_LADDER)
    outputs: list[Output] = []
    deep = keeps_depth(video)
    for spec in parse_codecs(",".join(opts.codecs)):
        scaled = [r.model_copy(update={"bitrate_kbps": max(100, round(
            r.bitrate_kbps * spec.bitrate_factor)), "crf": r.crf if spec.name == "h264"
            else None}) for r in rungs]  # fmt: skip
        planned = ladder.plan(scaled, display_width=video.display_width,
                              display_height=video.display_height,
                              source_fps=video.frame_rate, codec=spec.name)  # fmt: skip
        outputs += [Output(r, spec, deep and spec.keeps_ten_bit) for r in planned]
    return outputs


def _score(source, info, outputs: list[Output], encoded, work, progress) -> dict[str, dict]:
    """VMAF per rendition at the source's display size; 10-bit outputs of an HDR source are
    scored against the untouched (not tone-mapped) source in the same way, which keeps them
    comparable with each other but not with the SDR renditions."""
    from reelforge.media import quality

    video = info.video[0]
    frames = video.frames
    subsample = max(1, math.ceil(frames / VMAF_MAX_FRAMES))
    width = video.display_width - video.display_width % 2
    height = video.display_height - video.display_height % 2
    groups = [[o for o in outputs if not o.deep], [o for o in outputs if o.deep]]
    groups = [g for g in groups if g]
    update = progress.stage("quality (VMAF)", frames * len(groups), "frames")
    result: dict[str, dict] = {}
    for k, group in enumerate(groups):
        chain = [*source_filters(video), *to_bt709(video)] if not group[0].deep else (
            base_filters(video))  # fmt: skip
        scores = quality.vmaf_many(
            source,
            [quality.Distorted(encoded[o.rendition.name], o.rendition.fps_filter)
             for o in group],
            width=width, height=height, workdir=work, reference_filters=chain,
            subsample=subsample,
            on_progress=lambda s, k=k: update(min(frames * (k + 1),
                                                  frames * k + s * video.frame_rate)),
        )  # fmt: skip
        result.update({o.rendition.name: s.as_dict()
                       for o, s in zip(group, scores, strict=True)})  # fmt: skip
    update(frames * len(groups))
    return result


def _rendition_report(t: Track, vmaf: dict | None, speed: float) -> RenditionReport:
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
        playlist=t.uri("playlist.m3u8"),
        vmaf=vmaf,
        encode_speed_x_realtime=round(speed, 3),
    )
