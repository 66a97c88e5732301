"""The JSON report a publish writes (``report.json``)."""

from __future__ import annotations

from pydantic import BaseModel


class RenditionReport(BaseModel):
    name: str
    kind: str
    codec: str
    width: int = 0
    height: int = 0
    frame_rate: float = 0.0
    channels: int = 0
    sample_rate: int = 0
    target_kbps: int
    size_bytes: int
    segments: int
    duration: float
    average_kbps: float
    peak_kbps: float
    peak_to_average: float
    playlist: str
    vmaf: dict[str, float | int] | None = None
    encode_speed_x_realtime: float | None = None  # of the one shared encode of all renditions
    language: str | None = None  # audio: BCP 47
    loudness: dict | None = None  # alternate audio: measured and applied normalisation


class SubtitleReport(BaseModel):
    """A subtitle track: segmented WebVTT for HLS, one sidecar file for DASH."""

    language: str
    name: str
    playlist: str
    sidecar: str
    segments: int
    cues: int
    dropped: int = 0  # cues that start after the media ends


class Files(BaseModel):
    hls: str | None = None
    dash: str | None = None
    poster: dict[str, str] = {}
    poster_preview: str | None = None  # a small WebP of the poster, for pages to inline
    thumbnails_vtt: str | None = None
    sprites: list[str] = []
    fallback: str | None = None
    rate_quality_plot: str | None = None


class Totals(BaseModel):
    size_bytes: int
    media_duration: float
    encode_seconds: float
    encode_speed_x_realtime: float
    quality_seconds: float | None = None
    analysis_seconds: float | None = None  # per-title ladders: the analysis before encoding
    wall_seconds: float  # from the start to this report (the last one: to complete)
    playable_seconds: float | None = None  # start -> the stream in place and playable
    complete_seconds: float | None = None  # start -> every extra written (None: not yet)
    stage_seconds: dict[str, float] = {}  # where the time went, stage by stage


class ExtraStatus(BaseModel):
    """How an extra (poster, sprites, fallback, VMAF, plot) of a publish fared."""

    state: str  # "pending", "done", "skipped" (does not apply), "failed" or "interrupted"
    seconds: float | None = None
    reason: str | None = None  # why it failed, was skipped or interrupted


class Settings(BaseModel):
    segment_duration: float
    start_segments: list[float] = []  # the opening's segment durations, before the grid
    keyframe_interval: float
    preset: str
    audio_bitrate_kbps: int
    ladder: str
    codecs: list[str] = ["h264"]


class RateQualityPoint(BaseModel):
    """One rendition on the rate-quality plane (measured bitrate, VMAF mean)."""

    codec: str
    name: str
    width: int
    height: int
    kbps: float
    vmaf: float


class PublishReport(BaseModel):
    """What was published, measured from the files written."""

    reelforge_version: str
    input: str
    output: str
    settings: Settings
    source: dict
    renditions: list[RenditionReport]
    files: Files
    totals: Totals
    subtitles: list[SubtitleReport] = []
    rate_quality: list[RateQualityPoint] = []
    hull: list[RateQualityPoint] = []  # per-title ladders: the analysis' convex hull
    per_title: dict | None = None  # per-title ladders: samples, hull, rungs, timings
    chunks: dict | None = None  # a chunked encode: its chunks, CRFs and timings
    notes: list[str] = []
    # "playable": the stream is in place, extras are still being made; "complete": every
    # extra asked for is there; "incomplete": the stream plays, but some extras failed or
    # were interrupted (``extras`` says which and why)
    state: str = "complete"
    extras: dict[str, ExtraStatus] = {}
