"""Videos: what the API calls a published upload or a made story, and its status.

Contract: a video row names its owner (the token that made it), its job in the job store,
and where its stream goes: ``library/private/ID`` (the default; ``library/private`` holds
the origin's ``.private`` marker, so the stream is private from the instant publish places
it) or ``library/public/ID``. Status moves ``waiting`` (job queued) → ``processing`` →
``ready`` (the stream is playable: its manifests are in place; quality reports may still
follow) or ``errored`` (with the job's error ``code`` and ``message``). Jobs run as the
CLI's own commands (``reelforge publish`` / ``reelforge make``) recorded in the job store,
so ``jobs`` shows them and ``jobs retry`` reruns them.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field

from reelforge.errors import InputError
from reelforge.web.db import videos_table
from reelforge.web.settings import WebSettings

WAITING, PROCESSING, READY, ERRORED = "waiting", "processing", "ready", "errored"
OPEN = (WAITING, PROCESSING)
MASTER = "master.m3u8"


class PublishRequest(BaseModel):
    """The publish options the API takes (publish's own names; see ``reelforge publish``).
    File-naming options (subtitles, audio tracks, ladders) are not taken from clients."""

    model_config = ConfigDict(extra="forbid")

    codecs: list[Literal["h264", "hevc", "vp9", "av1"]] = Field(default=["h264"], min_length=1)
    preset: Literal["fast", "balanced", "best"] = "balanced"
    segment_duration: float = Field(default=4.0, ge=1.0, le=30.0)
    start_segments: list[float] | Literal["none"] | None = None
    per_title: bool = False
    target_vmaf: float = Field(default=95.0, ge=50.0, le=100.0)
    audio_bitrate: int = Field(default=128, ge=32, le=512)
    quality: bool = True
    thumbnails: bool = True
    fallback: bool = True
    audio_language: str | None = Field(default=None, max_length=35)

    def argv(self) -> list[str]:
        """These options as ``reelforge publish`` flags."""
        args = ["--codecs", ",".join(dict.fromkeys(self.codecs)), "--preset", self.preset,
                "--segment-duration", f"{self.segment_duration:g}",
                "--audio-bitrate", str(self.audio_bitrate)]  # fmt: skip
        if self.start_segments is not None:
            starts = self.start_segments
            args += [
                "--start-segments",
                starts if isinstance(starts, str) else ",".join(f"{s:g}" for s in starts),
            ]
        if self.per_title:
            args += ["--ladder", "per-title", "--target-vmaf", f"{self.target_vmaf:g}"]
        args += ["--quality" if self.quality else "--no-quality",
                 "--thumbnails" if self.thumbnails else "--no-thumbnails",
                 "--fallback" if self.fallback else "--no-fallback"]  # fmt: skip
        if self.audio_language:
            args += ["--audio-language", self.audio_language]
        return args


@dataclass(frozen=True)
class Video:
    id: str
    owner: str
    kind: str
    title: str
    status: str
    progress: float
    step: str | None
    job_id: str | None
    private: bool
    options: dict[str, Any]
    error_code: str | None
    error_message: str | None
    created_at: float
    updated_at: float
    ready_at: float | None

    @property
    def stream_path(self) -> str:
        """The stream's folder relative to the library (the origin's root)."""
        return f"{'private' if self.private else 'public'}/{self.id}"

    def snapshot(self) -> tuple:
        """What an event stream reports a change of."""
        return (self.status, round(self.progress, 3), self.step, self.error_code)


def new_video_id() -> str:
    return "v" + secrets.token_hex(8)


def _video(row: sa.Row) -> Video:
    return Video(**{c: getattr(row, c) for c in videos_table.c.keys()})  # noqa: SIM118


class VideoStore:
    """Rows of ``videos`` and the folders that belong to them."""

    def __init__(self, engine: sa.Engine, settings: WebSettings) -> None:
        self.engine = engine
        self.settings = settings
        marker = settings.library / "private" / ".private"
        marker.parent.mkdir(parents=True, exist_ok=True)
        (settings.library / "public").mkdir(parents=True, exist_ok=True)
        if not marker.exists():
            marker.write_text("streams here need a signed playback token\n")

    # --- folders ------------------------------------------------------------------------

    def source_dir(self, video_id: str) -> Path:
        return self.settings.sources / video_id

    def stream_dir(self, video: Video) -> Path:
        return self.settings.library / video.stream_path

    def master(self, video: Video) -> Path | None:
        """The stream's master playlist once it is playable (a story with several languages:
        the first language's)."""
        folder = self.stream_dir(video)
        if (folder / MASTER).is_file():
            return folder / MASTER
        made = folder / "make.json"
        try:
            streams = json.loads(made.read_text()).get("streams", {})
        except (OSError, ValueError):
            return None
        for sub in streams.values():
            if (folder / sub / MASTER).is_file():
                return folder / sub / MASTER
        return None

    # --- rows ---------------------------------------------------------------------------

    def create(self, *, video_id: str, owner: str, kind: str, title: str, job_id: str,
               private: bool, options: dict) -> Video:  # fmt: skip
        now = time.time()
        with self.engine.begin() as c:
            c.execute(videos_table.insert().values(
                id=video_id, owner=owner, kind=kind, title=title, status=WAITING,
                progress=0.0, job_id=job_id, private=private, options=options,
                created_at=now, updated_at=now))  # fmt: skip
        return self.get(video_id)

    def get(self, video_id: str) -> Video:
        with self.engine.connect() as c:
            row = c.execute(sa.select(videos_table).where(videos_table.c.id == video_id)).first()
        if row is None:
            raise InputError(f"no video {video_id!r}", code="not-found")
        return _video(row)

    def find(self, video_id: str) -> Video | None:
        try:
            return self.get(video_id)
        except InputError:
            return None

    def list(self, owner: str | None, *, limit: int = 50, before: str | None = None,
             status: str | None = None) -> list[Video]:  # fmt: skip
        """Newest first; ``owner`` None: everyone's; ``before``: ids created before it."""
        query = (
            sa.select(videos_table)
            .order_by(videos_table.c.created_at.desc(), videos_table.c.id.desc())
            .limit(limit)
        )
        if owner is not None:
            query = query.where(videos_table.c.owner == owner)
        if status is not None:
            query = query.where(videos_table.c.status == status)
        if before is not None and (mark := self.find(before)) is not None:
            query = query.where(videos_table.c.created_at < mark.created_at)
        with self.engine.connect() as c:
            return [_video(r) for r in c.execute(query).all()]

    def open_videos(self) -> list[Video]:
        with self.engine.connect() as c:
            rows = c.execute(sa.select(videos_table).where(videos_table.c.status.in_(OPEN))
                             .order_by(videos_table.c.created_at)).all()  # fmt: skip
        return [_video(r) for r in rows]

    def update(self, video_id: str, **values) -> None:
        values["updated_at"] = time.time()
        with self.engine.begin() as c:
            c.execute(videos_table.update().where(videos_table.c.id == video_id).values(**values))

    def delete(self, video: Video) -> None:
        """The row, its sources and its stream."""
        with self.engine.begin() as c:
            c.execute(videos_table.delete().where(videos_table.c.id == video.id))
        self.remove_files(video)

    def remove_files(self, video: Video, *, stream: bool = True) -> None:
        shutil.rmtree(self.source_dir(video.id), ignore_errors=True)
        if stream:
            shutil.rmtree(self.stream_dir(video), ignore_errors=True)
