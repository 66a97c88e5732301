"""The service's settings: where its data lives and its limits, built once at the edge.

Contract: :func:`load` takes the data folder and an environment mapping (the CLI passes
``os.environ``) and returns a frozen :class:`WebSettings`; nothing else in ``web/`` reads
the environment. The data folder holds everything the service keeps::

    DIR/web.sqlite      API tokens, videos, webhook deliveries
    DIR/state/          the job store, step cache and digests (as REELFORGE_STATE)
    DIR/uploads/        tus uploads in progress and finished
    DIR/sources/        each video's and story's inputs, by video id
    DIR/library/        published streams, one folder per video id (the origin's root)
    DIR/secrets.json    keys made on first start when none are configured (mode 0600)

Variables: ``REELFORGE_UPLOAD_MAX_BYTES`` (default 20 GiB), ``REELFORGE_UPLOAD_EXPIRY``
(seconds an unfinished upload is kept, default 86400), ``REELFORGE_WEB_WORKERS`` (jobs run
at once, default 1), ``REELFORGE_WEBHOOK_URL`` and ``REELFORGE_WEBHOOK_SECRET`` (where
``video.ready``/``video.errored`` go and the HMAC key that signs them),
``REELFORGE_PLAYBACK_KEY`` (signs playback tokens), ``REELFORGE_PLAYBACK_TTL`` (seconds a
minted playback URL stays valid, default 21600).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reelforge.errors import InputError

GIB = 1024**3


@dataclass(frozen=True)
class WebSettings:
    data: Path
    upload_max_bytes: int = 20 * GIB
    upload_expiry_s: float = 86400.0
    workers: int = 1
    webhook_url: str | None = None
    webhook_secret: bytes = b""
    playback_key: bytes = b""
    playback_ttl_s: int = 21600
    session_key: bytes = b""

    def __repr__(self) -> str:  # the keys stay out of logs and tracebacks
        return f"WebSettings(data={str(self.data)!r}, workers={self.workers})"

    @property
    def db_path(self) -> Path:
        return self.data / "web.sqlite"

    @property
    def state_dir(self) -> Path:
        return self.data / "state"

    @property
    def uploads(self) -> Path:
        return self.data / "uploads"

    @property
    def sources(self) -> Path:
        return self.data / "sources"

    @property
    def library(self) -> Path:
        return self.data / "library"

    def child_environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """The environment of the processes that run jobs: ``base`` with this service's
        state folder and playback key."""
        env = dict(base)
        env["REELFORGE_STATE"] = str(self.state_dir)
        env["REELFORGE_PLAYBACK_KEY"] = self.playback_key.decode()
        return env


def _number(env: Mapping[str, str], name: str, default: float, kind=int) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise InputError(f"{name} must be a number, not {text!r}") from None
    if value <= 0:
        raise InputError(f"{name} must be above 0, not {text}")
    return value


def _stored_secrets(data: Path) -> dict[str, str]:
    """Keys kept in ``DIR/secrets.json``, made (random, mode 0600) on first use."""
    path = data / "secrets.json"
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        stored = {}
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the service's keys ({exc})", path=path) from None
    names = ("playback_key", "webhook_secret", "session_key")
    if all(n in stored for n in names):
        return stored
    for n in names:
        stored.setdefault(n, secrets.token_urlsafe(32))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(stored, f)
    tmp.replace(path)
    return stored


def load(data: Path, environ: Mapping[str, str]) -> WebSettings:
    """Settings for the data folder ``data`` (made if missing) from ``environ``."""
    data = Path(data).expanduser().absolute()
    if data.exists() and not data.is_dir():
        raise InputError("--data must be a folder", path=data, option="--data")
    try:
        for sub in ("state", "uploads", "sources", "library"):
            (data / sub).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot make the data folder ({exc.strerror})", path=data,
                         option="--data") from None  # fmt: skip
    kept = _stored_secrets(data)
    return WebSettings(
        data=data,
        upload_max_bytes=int(_number(environ, "REELFORGE_UPLOAD_MAX_BYTES", 20 * GIB)),
        upload_expiry_s=float(_number(environ, "REELFORGE_UPLOAD_EXPIRY", 86400.0, float)),
        workers=int(_number(environ, "REELFORGE_WEB_WORKERS", 1)),
        webhook_url=environ.get("REELFORGE_WEBHOOK_URL") or None,
        webhook_secret=(environ.get("REELFORGE_WEBHOOK_SECRET") or kept["webhook_secret"]).encode(),
        playback_key=(environ.get("REELFORGE_PLAYBACK_KEY") or kept["playback_key"]).encode(),
        playback_ttl_s=int(_number(environ, "REELFORGE_PLAYBACK_TTL", 21600)),
        session_key=kept["session_key"].encode(),
    )
