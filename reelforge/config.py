"""Settings read from the environment (``REELFORGE_*``), in one place.

Contract: :func:`load` returns a frozen :class:`Config`; nothing else in the package reads
``os.environ`` for ReelForge settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Config:
    serve_root: Path | str | None  # a folder, or s3://BUCKET/PREFIX
    player_assets: Path | None
    manifest_max_age: int
    player_url: str = "/player/"  # where pages load the player scripts (REELFORGE_PLAYER_URL)
    image_key: bytes | None = None  # HMAC key for /img URLs (REELFORGE_IMAGE_KEY)
    image_unsigned: bool = False  # accept /img/unsafe/... (REELFORGE_IMAGE_UNSIGNED=1)
    image_cache: Path | None = None  # where /img results are kept (default: under the root)
    playback_key: bytes | None = None  # HMAC key for /p/<token>/ URLs (REELFORGE_PLAYBACK_KEY)
    s3_mode: str = "stream"  # s3:// roots: proxy objects, or redirect to presigned URLs


def _find_player_assets() -> Path | None:
    """The folder holding ``hls.js/dist/hls.min.js``: set-up installs it with npm."""
    override = os.environ.get("REELFORGE_PLAYER_ASSETS")
    candidates = [Path(override)] if override else []
    candidates += [PACKAGE_DIR.parent / "node_modules", Path.cwd() / "node_modules"]
    for c in candidates:
        if (c / "hls.js" / "dist" / "hls.min.js").is_file():
            return c
    return None


def load() -> Config:
    root = os.environ.get("REELFORGE_SERVE_ROOT")
    return Config(
        serve_root=(root if root.startswith("s3://") else Path(root)) if root else None,
        player_assets=_find_player_assets(),
        manifest_max_age=int(os.environ.get("REELFORGE_MANIFEST_MAX_AGE", "60")),
        player_url=os.environ.get("REELFORGE_PLAYER_URL", "/player/").rstrip("/") + "/",
        image_key=os.environ.get("REELFORGE_IMAGE_KEY", "").encode() or None,
        image_unsigned=os.environ.get("REELFORGE_IMAGE_UNSIGNED", "") in ("1", "true", "yes"),
        image_cache=Path(cache) if (cache := os.environ.get("REELFORGE_IMAGE_CACHE")) else None,
        playback_key=os.environ.get("REELFORGE_PLAYBACK_KEY", "").encode() or None,
        s3_mode=os.environ.get("REELFORGE_S3_MODE", "stream"),
    )
