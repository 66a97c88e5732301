"""Encode a whole ladder in one ffmpeg run: one decode, a filter graph that splits.

Contract: :func:`encode_ladder` writes one single-track fragmented MP4 per rendition
(``<name>.mp4``) and one for audio (``audio.mp4``) into ``workdir``. Every video output has
closed GOPs with an IDR at the same timestamps (multiples of ``keyframe_interval``), no
scene-cut keyframes, and VBV-capped bitrate. Fragments start at each keyframe (video) or
every ``keyframe_interval`` seconds (audio) so the packager can group them into segments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reelforge.media import ffmpeg
from reelforge.media.probe import MediaInfo, VideoStreamInfo
from reelforge.video.ladder import Rendition

# User-facing speed/quality presets mapped to x264 presets.
X264_PRESETS = {"fast": "veryfast", "balanced": "medium", "best": "slow"}
FRAGMENTED_MP4 = "+frag_keyframe+empty_moov+default_base_moof+cmaf+negative_cts_offsets"


@dataclass(frozen=True)
class AudioSettings:
    """The audio rendition: AAC-LC, stereo, 48 kHz."""

    bitrate_kbps: int = 128
    channels: int = 2
    sample_rate: int = 48_000


@dataclass(frozen=True)
class EncodeOutputs:
    """Where each encoded track was written."""

    video: dict[str, Path]
    audio: Path | None


def source_filters(video: VideoStreamInfo) -> list[str]:
    """Filters applied once, before the split: deinterlace, tone-map, constant frame rate."""
    chain: list[str] = []
    if video.is_interlaced:
        chain.append("bwdif=mode=send_frame")
    if video.is_hdr:
        chain += [
            "zscale=t=linear:npl=100",
            "format=gbrpf32le",
            "zscale=p=bt709",
            "tonemap=hable:desat=0",
            "zscale=t=bt709:m=bt709:r=tv",
        ]
    chain.append(f"fps={video.frame_rate_exact}")
    return chain


def _input_matrix(video: VideoStreamInfo) -> str:
    """Colour matrix to assume for the source: its tag, else by size (HD is BT.709)."""
    if video.color_primaries in ("bt709", "bt2020") or video.is_hdr:
        return "bt709" if video.color_primaries == "bt709" or video.is_hdr else "bt2020"
    if video.color_primaries in ("smpte170m", "bt470bg"):
        return "bt601"
    return "bt709" if video.display_height >= 720 or video.display_width >= 1280 else "bt601"


def build_filter_graph(video: VideoStreamInfo, renditions: list[Rendition]) -> str:
    """The ``-filter_complex`` text: one source chain, a split, one scaler per rendition."""
    n = len(renditions)
    head = ",".join([*source_filters(video), f"split={n}"])
    graph = [f"[0:v:0]{head}" + "".join(f"[s{i}]" for i in range(n))]
    matrix = "bt709" if video.is_hdr else _input_matrix(video)
    for i, r in enumerate(renditions):
        steps = [r.fps_filter] if r.fps_filter else []
        steps += [
            f"scale={r.width}:{r.height}:flags=lanczos:in_color_matrix={matrix}"
            ":out_color_matrix=bt709:out_range=tv",
            "setsar=1",
            "format=yuv420p",
        ]
        graph.append(f"[s{i}]" + ",".join(steps) + f"[v{i}]")
    return ";".join(graph)


def x264_args(r: Rendition, keyframe_interval: float, preset: str) -> list[str]:
    """Encoder arguments for one H.264 rendition on the shared keyframe grid."""
    gop = round(keyframe_interval * r.fps)
    return [
        "-c:v", "libx264",
        "-preset", X264_PRESETS.get(preset, preset),
        "-profile:v", "high",
        "-b:v", f"{r.bitrate_kbps}k",
        "-maxrate", f"{r.maxrate_kbps}k",
        "-bufsize", f"{r.bufsize_kbits}k",
        "-g", str(gop + 1),
        "-keyint_min", str(gop),
        "-sc_threshold", "0",
        "-forced-idr", "1",
        "-force_key_frames", f"expr:gte(t,n_forced*{keyframe_interval:.6f})",
        "-x264-params", "open-gop=0:scenecut=0",
        "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
        "-color_range", "tv",
    ]  # fmt: skip


def build_command(
    source: Path,
    info: MediaInfo,
    renditions: list[Rendition],
    workdir: Path,
    *,
    keyframe_interval: float,
    preset: str,
    audio: AudioSettings | None,
) -> tuple[list[str], EncodeOutputs]:
    """The full ffmpeg argument list and the files it will write."""
    args: list[str] = ["-i", str(source)]
    outputs: dict[str, Path] = {}
    if renditions:
        if not info.video:
            raise ValueError("renditions requested for a source without video")
        args += ["-filter_complex", build_filter_graph(info.video[0], renditions)]
        for i, r in enumerate(renditions):
            out = workdir / f"{r.name}.mp4"
            outputs[r.name] = out
            args += ["-map", f"[v{i}]", *x264_args(r, keyframe_interval, preset)]
            args += ["-an", "-movflags", FRAGMENTED_MP4, "-f", "mp4", str(out)]
    audio_out: Path | None = None
    if audio is not None and info.audio:
        audio_out = workdir / "audio.mp4"
        args += [
            "-map", "0:a:0", "-vn",
            "-c:a", "aac", "-b:a", f"{audio.bitrate_kbps}k",
            "-ac", str(audio.channels), "-ar", str(audio.sample_rate),
            "-af", "aresample=async=1:first_pts=0",
            "-frag_duration", str(int(keyframe_interval * 1_000_000)),
            "-movflags", "+empty_moov+default_base_moof+cmaf",
            "-f", "mp4", str(audio_out),
        ]  # fmt: skip
    return args, EncodeOutputs(video=outputs, audio=audio_out)


def encode_ladder(
    source: Path,
    info: MediaInfo,
    renditions: list[Rendition],
    workdir: Path,
    *,
    keyframe_interval: float,
    preset: str = "balanced",
    audio: AudioSettings | None = AudioSettings(),
    on_progress: Callable[[float], None] | None = None,
) -> EncodeOutputs:
    """Run the single ffmpeg process; ``on_progress`` receives seconds of media done."""
    args, outputs = build_command(
        source,
        info,
        renditions,
        workdir,
        keyframe_interval=keyframe_interval,
        preset=preset,
        audio=audio,
    )
    ffmpeg.run(args, subject=source, on_progress=on_progress)
    return outputs
