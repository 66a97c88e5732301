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

Workers (:mod:`reelforge.workers`): ``broker`` (``REELFORGE_BROKER``, e.g.
``redis://127.0.0.1:6379/0``; unset: every job runs in-process) is the Celery broker and
result backend; with it set, jobs go to ``reelforge worker`` processes, which must share
the job store (``jobs_url``) and the inputs and outputs (a shared folder at the same path,
or s3://). ``worker_visibility_timeout`` (``REELFORGE_WORKER_VISIBILITY_TIMEOUT``, seconds,
default 3600): how long a job taken by a worker that went away silently (SIGKILL, a lost
machine) waits before Redis gives it to another worker; it must be longer than the
longest job, or a long job is delivered twice (the second delivery then only watches the
first). ``worker_max_retries`` (``REELFORGE_WORKER_MAX_RETRIES``, default 3): how many
times a job that failed for a passing reason (a hosted API down, the disk, the job store)
is tried again, with exponential backoff.

Tools and caches: ``ffmpeg`` (``REELFORGE_FFMPEG``; default: the imageio-ffmpeg binary) and
``user_cache_dir`` (``REELFORGE_CACHE_DIR``; default: the user cache folder,
``~/.cache/reelforge`` on Linux), whose ``voice/`` folder holds the voice chunk cache
(:attr:`Config.voice_cache_dir`).

Hosted APIs (:class:`Services`): the API keys (:data:`API_KEYS`) come from the environment
only, never from the file, and never show in a ``repr``; their base-URL overrides
(:data:`API_URLS`, named in the file in lower case: ``sync_api_url = "..."``), the retry
backoff (``http_backoff``, ``REELFORGE_HTTP_BACKOFF``, seconds) and Sonic's model version
(``sonic_version``, ``REELFORGE_SONIC_VERSION``) may come from either. Services that fetch
their inputs by URL (Tavus, Vozo, LipDub) get them from ``staging`` (``REELFORGE_STAGING``,
``s3://BUCKET/PREFIX``) through presigned GET URLs that expire after ``staging_expiry``
seconds (``REELFORGE_STAGING_EXPIRY``, default 900).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from reelforge.errors import InputError

PACKAGE_DIR = Path(__file__).resolve().parent

# The hosted APIs' key variables, read from the environment only.
API_KEYS = ("FAL_KEY", "SEGMIND_API_KEY", "SYNC_API_KEY", "REPLICATE_API_TOKEN", "DID_API_KEY",
            "TAVUS_API_KEY", "HEYGEN_API_KEY", "SYNTHESIA_API_KEY", "VOZO_API_KEY",
            "LIPDUB_API_KEY")  # fmt: skip
# Their base-URL overrides (a proxy, a test server), from the environment or the file.
API_URLS = ("FAL_QUEUE_URL", "FAL_REST_URL", "SEGMIND_API_URL", "SYNC_API_URL",
            "REPLICATE_API_URL", "DID_API_URL", "TAVUS_API_URL", "HEYGEN_API_URL",
            "HEYGEN_UPLOAD_URL", "SYNTHESIA_API_URL", "SYNTHESIA_UPLOAD_URL",
            "VOZO_API_URL", "LIPDUB_API_URL")  # fmt: skip


@dataclass(frozen=True, repr=False)
class Services:
    """What the hosted APIs need: their keys by variable name (``FAL_KEY`` -> key), base-URL
    overrides by variable name, the backoff between retries (seconds, doubled each try) and
    Sonic's model version. The ``repr`` names the keys that are set, never their values."""

    keys: Mapping[str, str] = field(default_factory=dict)
    urls: Mapping[str, str] = field(default_factory=dict)
    http_backoff: float = 1.0
    sonic_version: str | None = None
    staging: str | None = None  # s3://BUCKET/PREFIX for inputs fetched by URL
    staging_expiry: float = 900.0  # seconds a presigned input URL stays valid

    def __post_init__(self) -> None:
        keys = {k: v.strip() for k, v in dict(self.keys).items() if v and v.strip()}
        urls = {k: v.strip() for k, v in dict(self.urls).items() if v and v.strip()}
        object.__setattr__(self, "keys", MappingProxyType(keys))
        object.__setattr__(self, "urls", MappingProxyType(urls))

    def key(self, var: str, *, service: str) -> str:
        """The key in ``var``; a missing one is an :class:`InputError` naming the variable."""
        found = self.keys.get(var)
        if not found:
            raise InputError(f"{service} needs an API key: set {var} in the environment")
        return found

    def url(self, var: str, default: str) -> str:
        """The base URL ``var`` overrides (``default`` when unset), without a trailing ``/``."""
        return (self.urls.get(var) or default).rstrip("/")

    def __repr__(self) -> str:
        return (
            f"Services(keys={sorted(self.keys)}, urls={dict(self.urls)}, "
            f"http_backoff={self.http_backoff}, sonic_version={self.sonic_version!r}, "
            f"staging={self.staging!r}, staging_expiry={self.staging_expiry})"
        )


@dataclass(frozen=True)
class Config:
    serve_root: Path | str | None = None  # a folder, or s3://BUCKET/PREFIX
    player_assets: Path | None = None
    manifest_max_age: int = 60
    player_url: str = "/player/"  # where pages load the player scripts (REELFORGE_PLAYER_URL)
    image_key: bytes | None = field(default=None, repr=False)  # /img URLs' HMAC key
    image_unsigned: bool = False  # accept /img/unsafe/... (REELFORGE_IMAGE_UNSIGNED=1)
    image_cache: Path | None = None  # where /img results are kept (default: under the root)
    playback_key: bytes | None = field(default=None, repr=False)  # /p/<token>/ URLs' HMAC key
    s3_mode: str = "stream"  # s3:// roots: proxy objects, or redirect to presigned URLs
    state_dir: Path = field(default_factory=lambda: default_state_dir())  # REELFORGE_STATE
    cache_dir: Path | None = None  # step outputs by key (REELFORGE_STEP_CACHE)
    jobs_url: str | None = None  # the job store (REELFORGE_JOBS_URL)
    services: Services = field(default_factory=Services)  # hosted APIs: keys, URLs, backoff
    ffmpeg: Path | None = None  # the ffmpeg binary to run (REELFORGE_FFMPEG)
    voice_cache_dir: Path = field(default_factory=lambda: user_cache_dir() / "voice")
    broker: str | None = field(default=None, repr=False)  # Celery over Redis (REELFORGE_BROKER)
    worker_visibility_timeout: float = 3600.0  # REELFORGE_WORKER_VISIBILITY_TIMEOUT
    worker_max_retries: int = 3  # REELFORGE_WORKER_MAX_RETRIES

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


def user_cache_dir() -> Path:
    """The user cache folder for ReelForge (``~/.cache/reelforge`` on Linux)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("reelforge", appauthor=False))


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
    "ffmpeg": "REELFORGE_FFMPEG",
    "user_cache_dir": "REELFORGE_CACHE_DIR",
    "http_backoff": "REELFORGE_HTTP_BACKOFF",
    "sonic_version": "REELFORGE_SONIC_VERSION",
    "staging": "REELFORGE_STAGING",
    "staging_expiry": "REELFORGE_STAGING_EXPIRY",
    "broker": "REELFORGE_BROKER",
    "worker_visibility_timeout": "REELFORGE_WORKER_VISIBILITY_TIMEOUT",
    "worker_max_retries": "REELFORGE_WORKER_MAX_RETRIES",
    **{var.lower(): var for var in API_URLS},
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
    secret = [k for k in data if str(k).upper() in API_KEYS]
    if secret:
        raise InputError(f"{secret[0]}: API keys are read from the environment only, never "
                         "from the settings file", path=path)  # fmt: skip
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
    try:
        backoff = float(raw.get("http_backoff") or "1.0")
    except ValueError:
        raise InputError("REELFORGE_HTTP_BACKOFF must be a number of seconds") from None
    try:
        visibility = float(raw.get("worker_visibility_timeout") or "3600")
        retries = int(raw.get("worker_max_retries") or "3")
    except ValueError:
        raise InputError("REELFORGE_WORKER_VISIBILITY_TIMEOUT must be a number of seconds and "
                         "REELFORGE_WORKER_MAX_RETRIES a whole number") from None  # fmt: skip
    try:
        staging_expiry = float(raw.get("staging_expiry") or "900")
    except ValueError:
        raise InputError("REELFORGE_STAGING_EXPIRY must be a number of seconds") from None
    if not 1 <= staging_expiry <= 604800:
        raise InputError("REELFORGE_STAGING_EXPIRY must be 1 to 604800 seconds (7 days)")
    staging = raw.get("staging") or None
    if staging and not staging.startswith("s3://"):
        raise InputError("REELFORGE_STAGING must be an s3://BUCKET/PREFIX location")
    if visibility <= 0 or retries < 0:
        raise InputError("REELFORGE_WORKER_VISIBILITY_TIMEOUT must be above 0 and "
                         "REELFORGE_WORKER_MAX_RETRIES 0 or more")  # fmt: skip
    services = Services(
        keys={var: env[var] for var in API_KEYS if var in env},
        urls={var: raw[var.lower()] for var in API_URLS if raw.get(var.lower())},
        http_backoff=backoff,
        sonic_version=raw.get("sonic_version") or None,
        staging=staging,
        staging_expiry=staging_expiry,
    )
    cache_root = raw.get("user_cache_dir")
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
        services=services,
        ffmpeg=Path(f).expanduser() if (f := raw.get("ffmpeg")) else None,
        voice_cache_dir=(Path(cache_root).expanduser() if cache_root else user_cache_dir())
        / "voice",
        broker=raw.get("broker") or None,
        worker_visibility_timeout=visibility,
        worker_max_retries=retries,
    )
