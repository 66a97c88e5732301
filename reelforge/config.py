"""Settings, read in one place: the environment (``REELFORGE_*``) over an optional file.

Contract: :func:`load` returns a frozen :class:`Config`; nothing else in the package reads
``os.environ`` for ReelForge settings. The CLI (and the web app) build it at the edge and
pass it, or the parts they need, down.

The file is named by ``REELFORGE_CONFIG`` (TOML, or YAML for ``.yaml``/``.yml``); its keys
are the field names below (``state_dir = "/srv/reelforge"``). An environment variable wins
over the file. Pipeline state:

- ``state_dir`` (``REELFORGE_STATE``; default: the user data folder,
  ``~/.local/share/reelforge`` on Linux) holds ``jobs.sqlite`` (the job store),
  ``digests.sqlite`` (content digests of inputs, by path, size, mtime and inode) and the
  step cache;
- ``cache_dir`` (``REELFORGE_STEP_CACHE``; default ``<state_dir>/steps``): finished steps'
  outputs by key;
- ``jobs_url`` (``REELFORGE_JOBS_URL``; default ``sqlite:///<state_dir>/jobs.sqlite``): any
  SQLAlchemy URL, e.g. ``postgresql+psycopg://host/reelforge`` for a shared store.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reelforge.errors import InputError

PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Config:
    serve_root: Path | str | None = None  # a folder, or s3://BUCKET/PREFIX
    player_assets: Path | None = None
    manifest_max_age: int = 60
    player_url: str = "/player/"  # where pages load the player scripts (REELFORGE_PLAYER_URL)
    image_key: bytes | None = None  # HMAC key for /img URLs (REELFORGE_IMAGE_KEY)
    image_unsigned: bool = False  # accept /img/unsafe/... (REELFORGE_IMAGE_UNSIGNED=1)
    image_cache: Path | None = None  # where /img results are kept (default: under the root)
    playback_key: bytes | None = None  # HMAC key for /p/<token>/ URLs (REELFORGE_PLAYBACK_KEY)
    s3_mode: str = "stream"  # s3:// roots: proxy objects, or redirect to presigned URLs
    state_dir: Path = field(default_factory=lambda: default_state_dir())  # REELFORGE_STATE
    cache_dir: Path | None = None  # step outputs by key (REELFORGE_STEP_CACHE)
    jobs_url: str | None = None  # the job store (REELFORGE_JOBS_URL)

    @property
    def step_cache_dir(self) -> Path:
        return self.cache_dir or self.state_dir / "steps"

    @property
    def jobs_store_url(self) -> str:
        return self.jobs_url or f"sqlite:///{self.state_dir.absolute() / 'jobs.sqlite'}"

    @property
    def digests_path(self) -> Path:
        return self.state_dir / "digests.sqlite"


def default_state_dir() -> Path:
    """The user data folder for ReelForge (``~/.local/share/reelforge`` on Linux)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("reelforge", appauthor=False))


# setting name -> environment variable
_ENV = {
    "serve_root": "REELFORGE_SERVE_ROOT",
    "manifest_max_age": "REELFORGE_MANIFEST_MAX_AGE",
    "player_url": "REELFORGE_PLAYER_URL",
    "image_key": "REELFORGE_IMAGE_KEY",
    "image_unsigned": "REELFORGE_IMAGE_UNSIGNED",
    "image_cache": "REELFORGE_IMAGE_CACHE",
    "playback_key": "REELFORGE_PLAYBACK_KEY",
    "s3_mode": "REELFORGE_S3_MODE",
    "player_assets": "REELFORGE_PLAYER_ASSETS",
    "state_dir": "REELFORGE_STATE",
    "cache_dir": "REELFORGE_STEP_CACHE",
    "jobs_url": "REELFORGE_JOBS_URL",
}


def _find_player_assets(override: str | None) -> Path | None:
    """The folder holding ``hls.js/dist/hls.min.js``: set-up installs it with npm."""
    candidates = [Path(override)] if override else []
    candidates += [PACKAGE_DIR.parent / "node_modules", Path.cwd() / "node_modules"]
    for c in candidates:
        if (c / "hls.js" / "dist" / "hls.min.js").is_file():
            return c
    return None


def read_file(path: Path) -> dict[str, Any]:
    """The settings in a TOML or YAML file (see the module docstring)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read the settings file ({exc.strerror})", path=path) from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise InputError(f"not a valid settings file ({exc})", path=path) from None
    except Exception as exc:  # yaml.YAMLError
        raise InputError(f"not a valid settings file ({exc})", path=path) from None
    if not isinstance(data, dict):
        raise InputError("a settings file must be a table of names and values", path=path)
    unknown = sorted(set(data) - set(_ENV))
    if unknown:
        raise InputError(f"unknown settings {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(_ENV))}", path=path)  # fmt: skip
    return {k: str(v) if not isinstance(v, bool) else ("1" if v else "") for k, v in data.items()}


def load(environ: Mapping[str, str] | None = None) -> Config:
    """Settings from ``environ`` (default: the process environment) over the file named by
    ``REELFORGE_CONFIG``."""
    env = os.environ if environ is None else environ
    raw: dict[str, str] = {}
    if file := env.get("REELFORGE_CONFIG"):
        raw.update(read_file(Path(file).expanduser()))
    for name, var in _ENV.items():
        if var in env:
            raw[name] = env[var]
    root = raw.get("serve_root")
    state = raw.get("state_dir")
    try:
        max_age = int(raw.get("manifest_max_age", "60"))
    except ValueError:
        raise InputError("REELFORGE_MANIFEST_MAX_AGE must be a whole number of seconds") from None
    return Config(
        serve_root=(root if root.startswith("s3://") else Path(root)) if root else None,
        player_assets=_find_player_assets(raw.get("player_assets")),
        manifest_max_age=max_age,
        player_url=raw.get("player_url", "/player/").rstrip("/") + "/",
        image_key=raw.get("image_key", "").encode() or None,
        image_unsigned=raw.get("image_unsigned", "") in ("1", "true", "yes", "True"),
        image_cache=Path(cache) if (cache := raw.get("image_cache")) else None,
        playback_key=raw.get("playback_key", "").encode() or None,
        s3_mode=raw.get("s3_mode", "stream"),
        state_dir=Path(state).expanduser() if state else default_state_dir(),
        cache_dir=Path(c).expanduser() if (c := raw.get("cache_dir")) else None,
        jobs_url=raw.get("jobs_url") or None,
    )
