"""The ``reelforge`` command line: a thin shell over the library.

Every command prints a human summary by default and machine-readable JSON with ``--json``.
User errors print one line naming the file and the problem and exit with code 2; ``--debug``
shows the traceback instead. The settings (:func:`reelforge.config.load`) are loaded once, as
a command starts (:func:`settings`), and passed down: the ffmpeg binary, hosted APIs' keys
and URLs, the voice cache.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from reelforge import __version__
from reelforge.cli_delivery import cdn_app, gc, image_url, sign_app
from reelforge.cli_jobs import jobs_app, recorded, watch
from reelforge.cli_make import make as make_command
from reelforge.cli_options import JsonOpt, WorkersOpt
from reelforge.cli_web import tokens_app, web
from reelforge.cli_workers import (
    list_workers,
    on_a_worker,
    publish_on_workers,
    use_workers,
    worker,
)
from reelforge.console import err_console, out_console, progress_bars
from reelforge.errors import Cancelled, InputError, ReelforgeError
from reelforge.media import ffmpeg  # light (the standard library): the signal handler uses it

if TYPE_CHECKING:
    from reelforge.config import Config

app = typer.Typer(
    name="reelforge",
    help="Prepare video, voice and talking heads for fast, natural playback.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_state = {"debug": False}
_settings: dict[str, Config] = {}  # "config": the running command's settings


def settings() -> Config:
    """The settings the running command uses: loaded once, when it starts."""
    if "config" not in _settings:
        from reelforge import config

        _settings["config"] = config.load()
    return _settings["config"]


def _version(value: bool) -> None:
    if value:
        print(f"reelforge {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    _state["debug"] = debug
    _settings.clear()  # a command rerun in this process (jobs retry) reads them afresh
    ffmpeg.use_binary(settings().ffmpeg)


@app.command()
def probe(
    file: Annotated[Path, typer.Argument(help="Media file to describe.")],
    as_json: JsonOpt = False,
) -> None:
    """Describe a media file: container, streams, keyframes, fast-start layout."""
    from reelforge.media.probe import probe as probe_file
    from reelforge.media.probe import summary_rows

    info = probe_file(file)
    if as_json:
        print(info.model_dump_json(indent=2))
        return
    table = Table(show_header=False, box=None)
    for label, value in summary_rows(info):
        table.add_row(f"[bold]{label}[/]", value)
    out_console.print(table)


@app.command()
def publish(
    input: Annotated[Path, typer.Argument(help="Video or audio file to publish.")],
    output: Annotated[
        str, typer.Option("-o", "--output", help="Output folder (created), or s3://BUCKET/PREFIX.")
    ],
    ladder: Annotated[
        Path | None,
        typer.Option(
            "--ladder",
            help="JSON file of rungs (width, height, bitrate_kbps), or "
            "per-title: rungs from this title's own rate-quality hull.",
        ),
    ] = None,
    target_vmaf: Annotated[
        float, typer.Option("--target-vmaf", help="Per-title: the top rung's VMAF.")
    ] = 95.0,
    codecs: Annotated[
        str,
        typer.Option(
            "--codecs", help="Comma-separated: h264, hevc, vp9, av1 (each covers the whole ladder)."
        ),
    ] = "h264",
    segment_duration: Annotated[
        float, typer.Option("--segment-duration", help="Target segment length in seconds.")
    ] = 4.0,
    start_segments: Annotated[
        str | None,
        typer.Option(
            "--start-segments",
            help="Durations of the first segments in seconds, e.g. 1,1,2: short ones start "
            "playback sooner. Default: 1 s for the first 2 s, then back to the grid; none: "
            "the grid from the start.",
        ),
    ] = None,
    preset: Annotated[
        str, typer.Option("--preset", help="Encoder speed: fast, balanced or best.")
    ] = "balanced",
    audio_bitrate: Annotated[
        int, typer.Option("--audio-bitrate", help="AAC bitrate in kb/s.")
    ] = 128,
    quality: Annotated[
        bool, typer.Option("--quality/--no-quality", help="Score every rendition with VMAF.")
    ] = True,
    thumbnails: Annotated[
        bool, typer.Option("--thumbnails/--no-thumbnails", help="Poster and scrubbing sprites.")
    ] = True,
    fallback: Annotated[
        bool, typer.Option("--fallback/--no-fallback", help="Fast-start MP4 fallback.")
    ] = True,
    subtitles: Annotated[
        list[str] | None,
        typer.Option(
            "--subtitles",
            help="LANG=FILE.vtt: a WebVTT subtitle track, e.g. "
            "en=talk.en.vtt (repeatable; LANG is a BCP 47 tag: en, fr, pt-BR).",
        ),
    ] = None,
    audio_tracks: Annotated[
        list[str] | None,
        typer.Option(
            "--audio-track",
            help="LANG=FILE: an alternate audio track in another "
            "language (repeatable), loudness-normalised and fitted to the video.",
        ),
    ] = None,
    audio_language: Annotated[
        str | None,
        typer.Option(
            "--audio-language", help="The main audio's language (default: the input's tag)."
        ),
    ] = None,
    versioned: Annotated[
        bool,
        typer.Option("--versioned", help="OUTPUT is a stream folder: add a version, switch to it."),
    ] = False,
    chunk_seconds: Annotated[
        float | None,
        typer.Option(
            "--chunk-seconds",
            help="Encode the video in chunks of about S seconds (whole segments), one per "
            "CPU at a time, with capped CRF, joined without re-encoding; 0: one encode. "
            "Default: one encode; on the workers, 30 s chunks (as tasks) for titles over 3 min.",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output.")] = False,
    as_json: JsonOpt = False,
    workers: WorkersOpt = None,
) -> None:
    """Publish a video as an adaptive CMAF stream (HLS + DASH) with poster and fallback."""
    from reelforge.video import ladder as ladder_mod
    from reelforge.video.publish import PublishOptions, parse_track
    from reelforge.video.timeline import parse_opening

    per_title = ladder is not None and str(ladder) == "per-title" and not ladder.exists()
    rungs = ladder_mod.load_ladder_file(ladder) if ladder and not per_title else None
    opts = PublishOptions(
        rungs=rungs,
        per_title=per_title,
        target_vmaf=target_vmaf,
        codecs=tuple(c.strip() for c in codecs.split(",")),
        ladder_name="per-title" if per_title else str(ladder) if ladder else "apple-hls-h264",
        segment_duration=segment_duration,
        start_segments=None if start_segments is None else parse_opening(start_segments),
        preset=preset,
        audio_bitrate_kbps=audio_bitrate,
        quality=quality,
        poster=thumbnails,
        thumbnails=thumbnails,
        fallback=fallback,
        force=force,
        subtitles=[parse_track(t, "--subtitles") for t in subtitles or []],
        audio_tracks=[parse_track(t, "--audio-track") for t in audio_tracks or []],
        audio_language=audio_language,
        chunk_seconds=chunk_seconds,
    )
    tracks = {f"{kind}-{lang}": path for kind, given in (("subtitles", opts.subtitles),
              ("audio", opts.audio_tracks)) for lang, path in given}  # fmt: skip
    if use_workers(workers):
        _show_publish(*publish_on_workers(output, as_json=as_json), output, as_json)
        return
    from reelforge.delivery.deliver import publish_to

    runner = None
    if on_a_worker():
        from reelforge.workers.chunks import worker_chunking

        opts, runner = worker_chunking(opts, input, output, settings())
    with (
        progress_bars(enabled=not as_json or err_console.is_terminal) as bars,
        recorded("publish", output, bars, inputs={"input": input, **tracks}) as bars,
    ):
        done = publish_to(input, output, opts, versioned=versioned, progress=bars,
                          runner=runner)  # fmt: skip
    _show_publish(done.report, done.version, output, as_json)


def _show_publish(report, version: str | None, output: str, as_json: bool) -> None:
    """What publish prints: warnings for extras not made, then the report (or a summary)."""
    for name, extra in report.extras.items():
        if extra.state in ("failed", "interrupted"):
            why = escape(extra.reason or extra.state)
            err_console.print(f"[yellow]warning:[/] {name} not made ({why}); the stream "
                              "plays without it", highlight=False, soft_wrap=True)  # fmt: skip
    if as_json:
        data = json.loads(report.model_dump_json())
        if version is not None:
            data["version"] = version
        print(json.dumps(data, indent=2))
        return
    _print_publish_summary(report)
    if version is not None:
        out_console.print(f"{output} now points at version {version}")


def _print_publish_summary(report) -> None:
    table = Table(title=f"Published {report.input} → {report.output}")
    for col in ("rendition", "codec", "size", "fps", "avg kb/s", "peak kb/s", "peak/avg", "VMAF"):
        table.add_column(col, justify="right" if col not in ("rendition", "codec") else "left")
    for r in report.renditions:
        size = f"{r.width}x{r.height}" if r.kind == "video" else f"{r.channels} ch"
        vmaf = f"{r.vmaf['mean']:.1f}" if r.vmaf else "-"
        fps = f"{r.frame_rate:g}" if r.kind == "video" else "-"
        table.add_row(
            r.name, r.codec, size, fps, f"{r.average_kbps:.0f}", f"{r.peak_kbps:.0f}",
            f"{r.peak_to_average:.2f}", vmaf,
        )  # fmt: skip
    out_console.print(table)
    t = report.totals
    out_console.print(
        f"{t.size_bytes / 1e6:.1f} MB for {t.media_duration:.1f} s; "
        f"encode {t.encode_seconds:.1f} s "
        f"({t.encode_speed_x_realtime:.2f}x real time); playable after "
        f"{t.playable_seconds or t.wall_seconds:.1f} s, complete after {t.wall_seconds:.1f} s"
    )
    out_console.print(
        f"HLS: {report.output}/{report.files.hls}   DASH: {report.output}/{report.files.dash}"
    )
    out_console.print(f"Watch it: reelforge serve {report.output}")


@app.command()
def serve(
    root: Annotated[
        str, typer.Argument(help="A published folder (or a folder of them), or s3://BUCKET/PREFIX.")
    ],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    server: Annotated[str, typer.Option("--server", help="granian or uvicorn.")] = "granian",
    workers: Annotated[int, typer.Option("--workers", help="Server processes.")] = 1,
    s3_mode: Annotated[
        str | None,
        typer.Option("--s3-mode", help="For s3:// roots: stream (default) or redirect."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Serve published streams with a player page; prints the URL where they play."""
    import os

    from reelforge.delivery.server import SERVERS, check_address
    from reelforge.delivery.server import serve as run_server
    from reelforge.storage import is_s3, parse_s3

    if is_s3(root):
        shown = str(parse_s3(root))
        if s3_mode is not None:
            if s3_mode not in ("stream", "redirect"):
                raise InputError("--s3-mode must be stream or redirect")
            os.environ["REELFORGE_S3_MODE"] = s3_mode
    else:
        if not Path(root).is_dir():
            raise InputError("is not a folder", path=root)
        shown = str(Path(root).resolve())
    if server not in SERVERS:
        raise InputError(f"--server must be one of {', '.join(SERVERS)}")
    if not 1 <= workers <= 64:
        raise InputError("--workers must be 1 to 64")
    check_address(host, port)  # before the URL is printed: a busy port is one line, exit 2
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
    if as_json:
        print(json.dumps({"url": url, "root": shown, "server": server}), flush=True)
    else:
        out_console.print(f"Serving {root} at [bold]{url}[/] (Ctrl-C to stop)")
        sys.stdout.flush()
    run_server(root, host=host, port=port, server=server, workers=workers)


@app.command()
def images(
    sources: Annotated[list[Path], typer.Argument(help="Image files or folders of them.")],
    output: Annotated[
        str, typer.Option("-o", "--output", help="Folder to write, or s3://BUCKET/PREFIX.")
    ],
    widths: Annotated[
        str, typer.Option("--widths", help="Comma-separated srcset widths (never above source).")
    ] = "320,640,960,1280,1920,2560",
    formats: Annotated[
        str, typer.Option("--formats", help="Comma-separated: avif, webp, jpeg.")
    ] = "avif,webp,jpeg",
    target: Annotated[
        float, typer.Option("--target", help="SSIMULACRA2 score each variant must reach.")
    ] = 70.0,
    sizes: Annotated[str, typer.Option("--sizes", help="The snippets' sizes attribute.")] = "100vw",
    above_fold: Annotated[
        list[str] | None,
        typer.Option("--above-fold", help="Image (name or file name) shown without scrolling."),
    ] = None,
    base_url: Annotated[str, typer.Option("--base-url", help="URL prefix in snippets.")] = "",
    keep_metadata: Annotated[
        bool, typer.Option("--keep-metadata", help="Keep EXIF artist/copyright in the manifest.")
    ] = False,
    jobs: Annotated[int, typer.Option("--jobs", help="Processes to use.")] = 1,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Responsive AVIF/WebP/JPEG sets tuned to a perceptual target, placeholders, snippets."""
    from reelforge.images.encoders import FORMATS
    from reelforge.images.responsive import ImageOptions, build_sets

    try:
        width_list = tuple(sorted({int(w) for w in widths.split(",") if w.strip()}))
    except ValueError:
        raise InputError(f"--widths must be numbers like 320,640, not {widths!r}") from None
    if not width_list or min(width_list) < 16 or max(width_list) > 8192:
        raise InputError("--widths must be between 16 and 8192")
    fmt_list = tuple(f.strip().lower() for f in formats.split(",") if f.strip())
    bad = [f for f in fmt_list if f not in FORMATS or FORMATS[f].lossless]
    if bad or not fmt_list:
        raise InputError(f"--formats must be some of avif, webp, jpeg, not {formats!r}")
    if not 0 < target < 100:
        raise InputError("--target must be a SSIMULACRA2 score between 0 and 100")
    if jobs < 1:
        raise InputError("--jobs must be 1 or more")
    opts = ImageOptions(widths=width_list, formats=fmt_list, target=target, sizes=sizes,
                        above_fold=frozenset(above_fold or ()), keep_metadata=keep_metadata,
                        base_url=base_url)  # fmt: skip
    from reelforge.storage import is_s3, parse_s3, upload_tree

    with (
        progress_bars(enabled=not as_json or err_console.is_terminal) as bars,
        recorded(
            "images", output, bars, inputs={f"source{i}": s for i, s in enumerate(sources)}
        ) as bars,
    ):
        if is_s3(output):
            import tempfile

            where = parse_s3(output)
            with tempfile.TemporaryDirectory(prefix="reelforge-images-") as tmp:
                local = Path(tmp) / "site"
                manifest = build_sets(sources, local, opts, jobs=jobs, progress=bars)
                upload_tree(local, where)
            shown = str(where)
        else:
            manifest = build_sets(sources, Path(output), opts, jobs=jobs, force=force,
                                  progress=bars)  # fmt: skip
            shown = str(Path(output).resolve())
    if as_json:
        print(json.dumps({"output": shown, **manifest}, indent=2))
        return
    table = Table(title=f"{len(manifest['images'])} images in {output}")
    for col in ("image", "size", "widths", *fmt_list, "score min"):
        table.add_column(col, justify="right")
    for e in manifest["images"]:
        per = {f: sum(v["bytes"] for v in e["variants"] if v["format"] == f) for f in fmt_list}
        ws = sorted({v["width"] for v in e["variants"]})
        table.add_row(e["name"], f"{e['width']}x{e['height']}", ",".join(map(str, ws)),
                      *(f"{per[f] / 1024:.0f} KiB" for f in fmt_list),
                      f"{min(v['ssimulacra2'] for v in e['variants']):.1f}")  # fmt: skip
    out_console.print(table)


@app.command()
def sample(
    output: Annotated[Path, typer.Argument(help="MP4 file to write.")],
    duration: Annotated[float, typer.Option("--duration", help="Seconds.")] = 12.0,
    size: Annotated[str, typer.Option("--size", help="WIDTHxHEIGHT.")] = "1280x720",
    fps: Annotated[int, typer.Option("--fps", help="Frames per second.")] = 30,
    audio: Annotated[bool, typer.Option("--audio/--no-audio", help="Add a tone.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Make a sample clip from ffmpeg's test sources (pattern, timecode, tone)."""
    from reelforge.media.sample import make_sample

    try:
        width, height = (int(x) for x in size.lower().split("x"))
    except ValueError:
        raise InputError(f"--size must look like 1280x720, not {size!r}") from None
    make_sample(output, duration=duration, width=width, height=height, fps=fps, audio=audio)
    if as_json:
        print(json.dumps({"output": str(output), "duration": duration, "size": size}))
    else:
        out_console.print(f"Wrote {output}")


@app.command()
def voice(
    script: Annotated[Path, typer.Argument(help="Dialogue script ([S1]/[S2] turns).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="OUT.wav, OUT.m4a or OUT.opus.")],
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend", help="piper (default when installed), espeak, dia, fal, segmind."
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Dia weights: a local folder or a hub id.")
    ] = None,
    lufs: Annotated[float, typer.Option("--lufs", help="Integrated loudness target.")] = -16.0,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Synthesise everything.")] = False,
    mos: Annotated[bool, typer.Option("--mos/--no-mos", help="Score with DNSMOS.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Render a dialogue script to loudness-normalised speech, WebVTT subtitles and a report."""
    from reelforge.voice.render import VoiceOptions, render

    cfg = settings()
    opts = VoiceOptions(
        backend=backend,
        backend_options={"model": model} if model else {},
        target_lufs=lufs,
        cache_dir=cfg.voice_cache_dir,
        use_cache=not no_cache,
        mos=mos,
    )
    with progress_bars(enabled=not as_json or err_console.is_terminal) as bars:
        report = render(script, output, opts, bars, services=cfg.services)
    for warning in report.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    if as_json:
        print(report.model_dump_json(indent=2))
        return
    table = Table(title=f"{report.output} ({report.backend}, {report.model})")
    for col in ("turn", "speaker", "start", "dur", "LUFS", "dBTP", "DNSMOS"):
        table.add_column(col, justify="right")
    for t in report.turns:
        mos = f"{t.dnsmos['overall']:.2f}" if t.dnsmos else "-"
        table.add_row(str(t.turn), t.speaker, f"{t.start:.2f}", f"{t.duration:.2f}",
                      f"{t.loudness_lufs}", f"{t.true_peak_dbtp}", mos)  # fmt: skip
    out_console.print(table)
    total_mos = f"{report.dnsmos['overall']:.2f}" if report.dnsmos else "-"
    out_console.print(
        f"{report.duration:.1f} s at {report.loudness_lufs} LUFS, {report.true_peak_dbtp} dBTP; "
        f"real-time factor {report.real_time_factor}; DNSMOS {total_mos}; "
        f"{report.backend_calls} backend calls, {report.cache_hits} from cache"
    )


@app.command()
def talk(
    audio: Annotated[Path, typer.Option("--audio", help="Speech to lip-sync to.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="OUT.mp4 to write.")],
    face: Annotated[Path | None, typer.Option("--face", help="Portrait image to animate.")] = None,
    video: Annotated[
        Path | None, typer.Option("--video", help="Video to dub (instead of --face).")
    ] = None,
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            help="viseme (offline), wav2lip (--checkpoint), or hosted: syncso (SYNC_API_KEY), "
            "fal (FAL_KEY), sonic (REPLICATE_API_TOKEN), did (DID_API_KEY).",
        ),
    ] = "viseme",
    sync_mode: Annotated[
        str,
        typer.Option(
            "--sync-mode",
            help="Audio and video of different lengths: cut (to the shorter), loop or "
            "pingpong (repeat the video; trim it when the audio is shorter), pad (silence "
            "after short audio; hold the last frame under long audio).",
        ),
    ] = "cut",
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Hosted model: lipsync-2, lipsync-2-pro, "
            "fal-ai/sync-lipsync, fal-ai/latentsync, a Replicate version.",
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="Wav2Lip weights (.pth).")
    ] = None,
    device: Annotated[str, typer.Option("--device", help="wav2lip: cpu, cuda or mps.")] = "cpu",
    fps: Annotated[int, typer.Option("--fps", help="Frames per second for a portrait.")] = 25,
    face_index: Annotated[
        int, typer.Option("--face-index", help="Which face, by size (0 = largest).")
    ] = 0,
    motion: Annotated[
        bool, typer.Option("--motion/--no-motion", help="A portrait's slight head motion.")
    ] = True,
    transcript: Annotated[
        Path | None,
        typer.Option(
            "--transcript",
            help="What is said (text, .srt or .vtt): aligned for the viseme mouth; "
            "without it, phones are recognised from the audio.",
        ),
    ] = None,
    mouth: Annotated[
        str,
        typer.Option(
            "--mouth",
            help="viseme: phones (mouth shapes from phone timings) or energy (loudness only, "
            "any language).",
        ),
    ] = "phones",
    as_json: JsonOpt = False,
) -> None:
    """Make a portrait speak, or dub a video: a lip-synced, fast-start H.264 + AAC MP4."""
    from reelforge.lipsync.talk import TalkOptions
    from reelforge.lipsync.talk import talk as run_talk

    opts = TalkOptions(backend=backend, fps=fps, face_index=face_index, motion=motion,
                       sync_mode=sync_mode, model=model, checkpoint=checkpoint,
                       device=device, transcript=transcript, mouth=mouth)  # fmt: skip
    with progress_bars(enabled=not as_json or err_console.is_terminal) as bars:
        report = run_talk(face, audio, output, opts, bars, video=video,
                          services=settings().services)  # fmt: skip
    if as_json:
        from dataclasses import asdict

        print(json.dumps(asdict(report), indent=2))
        return
    sync = report.sync or {}
    out_console.print(
        f"Wrote {report.output}: {report.width}x{report.height}, {report.frames} frames at "
        f"{report.fps} fps, rendered at {report.render_fps:.0f} fps; sync "
        f"{sync.get('offset_ms', 0):+.0f} ms "
        f"({'determined' if sync.get('determined') else 'undetermined'})",
        highlight=False,
    )
    for note in report.notes:
        out_console.print(f"note: {note}", highlight=False)


@app.command()
def quality(
    reference: Annotated[Path, typer.Argument(help="The original video.")],
    distorted: Annotated[Path, typer.Argument(help="The encoded video to score.")],
    subsample: Annotated[
        int, typer.Option("--subsample", help="Score every n-th frame (1 = all).")
    ] = 1,
    frames: Annotated[
        bool, typer.Option("--frames/--no-frames", help="Per-frame scores in the JSON.")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """VMAF, PSNR, SSIM and XPSNR of DISTORTED against REFERENCE, frames paired by index."""
    import tempfile

    from reelforge.media.probe import probe
    from reelforge.media.quality import full_reference

    if subsample < 1:
        raise InputError("--subsample must be 1 or more")
    ref, dis = probe(reference), probe(distorted)
    for info, path in ((ref, reference), (dis, distorted)):
        if not info.video:
            raise InputError("has no video stream to score", path=path)
    total, rate = max(1, ref.video[0].frames), ref.video[0].frame_rate
    with (
        tempfile.TemporaryDirectory(prefix="reelforge-quality-") as work,
        progress_bars(enabled=not as_json or err_console.is_terminal) as bars,
    ):
        from reelforge.progress import NullProgress

        update = (bars or NullProgress()).stage("quality", total, "frames")
        result = full_reference(reference, distorted, workdir=Path(work), subsample=subsample,
                                on_progress=lambda s: update(min(total, s * rate)),
                                probed=(ref, dis))  # fmt: skip
        update(total)
    data = result.as_dict()
    if not frames:
        data.pop("frames")
    if as_json:
        print(json.dumps(data, indent=2))
        return
    table = Table(title=f"{distorted} against {reference} at {result.width}x{result.height}")
    for col in ("metric", "mean", "harmonic mean", "5th percentile", "min"):
        table.add_column(col, justify="right")
    for metric, v in result.pooled.items():
        if v.get("identical"):
            table.add_row(metric, "inf (identical)", "", "", "")
            continue
        table.add_row(metric, f"{v['mean']:.3f}", f"{v['harmonic_mean']:.3f}",
                      f"{v['p5']:.3f}", f"{v['min']:.3f}")  # fmt: skip
    out_console.print(table)
    for note in result.notes:
        out_console.print(f"note: {note}", highlight=False)


@app.command()
def compare(
    report_a: Annotated[Path, typer.Argument(help="A publish report.json (the candidate).")],
    report_b: Annotated[Path, typer.Argument(help="Another report.json (the baseline).")],
    codec_a: Annotated[
        str | None, typer.Option("--codec-a", help="Only this codec's renditions of A.")
    ] = None,
    codec_b: Annotated[
        str | None, typer.Option("--codec-b", help="Only this codec's renditions of B.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """BD-rate (VMAF) of ladder A against ladder B: negative when A needs fewer bits.

    Per codec both reports have, and overall (each report's best renditions of any codec).
    ``compare R.json R.json --codec-a av1 --codec-b h264`` compares codecs of one publish."""
    from reelforge.media.probe import check_readable_file
    from reelforge.video.bdrate import compare_reports

    reports = []
    for path in (report_a, report_b):
        check_readable_file(path)
        try:
            reports.append(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InputError("not a JSON report", path=path) from None
        if not isinstance(reports[-1], dict) or "renditions" not in reports[-1]:
            raise InputError("not a publish report (no renditions)", path=path)
    rows = compare_reports(*reports, codec_a=codec_a, codec_b=codec_b)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"BD-rate of {report_a} against {report_b} (VMAF)")
    for col in ("codec", "BD-rate", "VMAF range", "points A/B"):
        table.add_column(col, justify="right")
    for codec, row in rows.items():
        bd = row["bd_rate_percent"]
        rng = row["vmaf_range"]
        table.add_row(codec, f"{bd:+.1f}%" if bd is not None else "no overlap",
                      f"{rng[0]:.1f}-{rng[1]:.1f}" if rng else "-",
                      f"{row['points_a']}/{row['points_b']}")  # fmt: skip
    out_console.print(table)


@app.command("sync-check")
def sync_check(
    video: Annotated[Path, typer.Argument(help="A video with sound.")],
    face_index: Annotated[
        int, typer.Option("--face-index", help="Which face, by size (0 = largest).")
    ] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Measure audio-visual sync: offset in ms (positive when audio leads) and confidence."""
    from reelforge.lipsync.syncmeter import measure

    reading = measure(video, face_index=face_index)
    if as_json:
        print(json.dumps(reading.as_dict(), indent=2))
        return
    state = "determined" if reading.determined else f"undetermined ({reading.reason})"
    out_console.print(
        f"{video}: audio offset {reading.offset_ms:+.0f} ms "
        f"({'audio leads' if reading.offset_ms > 0 else 'audio lags'}), "
        f"confidence {reading.confidence:.2f}, {state}",
        highlight=False,
    )


app.command("image-url")(image_url)
app.command("make")(make_command)
app.command()(gc)
app.add_typer(sign_app, name="sign")
app.add_typer(cdn_app, name="cdn")
app.add_typer(jobs_app, name="jobs")
app.add_typer(tokens_app, name="tokens")
app.command()(web)
app.command()(worker)
app.command("workers")(list_workers)
app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(watch)


def _interrupted(signum, frame) -> None:
    """SIGINT or SIGTERM: stop every ffmpeg now (they run in sessions of their own, so a
    terminal's Ctrl-C never reaches them) and unwind with KeyboardInterrupt, once: a repeated
    signal while the partial output is being removed does not cut that short."""
    ffmpeg.request_stop()
    if not _state.get("stopping"):
        _state["stopping"] = True
        raise KeyboardInterrupt


def _one_line(text: str) -> str:
    """An error message as one printable line: control characters (a file name's, or a
    broken file's bytes quoted in it) are shown escaped, never as line breaks."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text.strip())


def main() -> None:
    """Entry point: run the app, turning errors into one line and an exit code."""
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)  # even if started with it ignored
    try:
        code = app(standalone_mode=False)
        if code == Cancelled.exit_code:  # Typer turns KeyboardInterrupt into this exit code
            raise KeyboardInterrupt
        sys.exit(code if isinstance(code, int) else 0)
    except ReelforgeError as exc:
        if _state["debug"]:
            raise
        err_console.print(f"[red]error:[/] {escape(_one_line(str(exc)))}", highlight=False,
                          soft_wrap=True)  # fmt: skip
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        ffmpeg.stop_all()  # any still running (in another thread) is gone before we exit
        err = Cancelled("interrupted; partial output removed")
        err_console.print(f"[red]error:[/] {err}", soft_wrap=True)
        # Every partial output is gone by now (removed while the interrupt unwound). Exit at
        # once: an abandoned worker thread may still be inside a model's native code, which
        # neither waiting for nor tearing the interpreter down around it is safe.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(err.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except OSError as exc:  # the environment (disk, permissions) where no step named a file
        if _state["debug"]:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        err_console.print(f"[red]error:[/] {escape(_one_line(where + str(exc.strerror or exc)))}",
                          highlight=False, soft_wrap=True)  # fmt: skip
        sys.exit(1)
    except (typer.Abort, EOFError):
        sys.exit(130)
    except Exception as exc:  # usage errors arrive here in non-standalone mode
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        if _state["debug"]:
            raise
        err_console.print(f"[red]error:[/] {escape(_one_line(f'{type(exc).__name__}: {exc}'))}",
                          highlight=False, soft_wrap=True)  # fmt: skip
        sys.exit(1)


if __name__ == "__main__":
    main()
