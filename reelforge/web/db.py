"""The service's own tables (SQLAlchemy Core): API tokens, videos, webhook deliveries.

Contract: :func:`open_database` returns an engine on ``DIR/web.sqlite`` (or any SQLAlchemy
URL) with the tables made. Jobs and their steps stay in the job store
(:mod:`reelforge.pipeline.jobs`); a video row points at its job by id.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from reelforge.pipeline.jobs import open_engine

metadata = sa.MetaData()

tokens_table = sa.Table(
    "api_tokens", metadata,
    sa.Column("id", sa.String(24), primary_key=True),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False, unique=True),  # SHA-256 of the token
    sa.Column("webhook_url", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_used_at", sa.Float),
    sa.Column("revoked", sa.Boolean, nullable=False, default=False),
)  # fmt: skip

videos_table = sa.Table(
    "videos", metadata,
    sa.Column("id", sa.String(24), primary_key=True),
    sa.Column("owner", sa.String(24), nullable=False, index=True),  # the token that made it
    sa.Column("kind", sa.String(8), nullable=False),  # video | story
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("status", sa.String(12), nullable=False, index=True),
    sa.Column("progress", sa.Float, nullable=False, default=0.0),
    sa.Column("step", sa.String(80)),
    sa.Column("job_id", sa.String(32)),
    sa.Column("private", sa.Boolean, nullable=False, default=True),
    sa.Column("options", sa.JSON, nullable=False),
    sa.Column("error_code", sa.String(40)),
    sa.Column("error_message", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("ready_at", sa.Float),
)  # fmt: skip

deliveries_table = sa.Table(
    "webhook_deliveries", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("video_id", sa.String(24), nullable=False, index=True),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_at", sa.Float, nullable=False),
    sa.Column("status", sa.String(12), nullable=False, index=True),  # pending|sent|failed
    sa.Column("last_error", sa.Text),
)  # fmt: skip


def open_database(url_or_path: str | Path) -> sa.Engine:
    """The engine, with the service's tables made if missing."""
    engine = open_engine(url_or_path)
    metadata.create_all(engine)
    return engine
