"""Where published files live: a local folder (the default) or S3-compatible storage.

Contract: an output or served location is either a path or ``s3://BUCKET/PREFIX``
(:func:`is_s3`, :func:`parse_s3`). Steps always build into a local folder first; then
:func:`upload_tree` copies it to S3 with each object's ``Content-Type`` and
``Cache-Control`` (by asset class, as the origin would send them), pointer files
(``master.m3u8``, ``manifest.mpd``, ``current.json`` and ``manifest.json`` at the top)
last, so a reader never finds a pointer to objects that are not there yet; a second call
may send only what changed since the first.
:func:`download_file` fetches one object (``None`` when absent). The client comes from
boto3's usual configuration (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_DEFAULT_REGION``, and ``AWS_ENDPOINT_URL`` for S3-compatible servers); credentials
never appear in messages.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from pathlib import Path

from reelforge.delivery.cache import cache_control, register_mime_types
from reelforge.errors import InputError, ReelforgeError
from reelforge.layout import POINTERS


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # no leading or trailing slash; may be empty

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def is_s3(location: str | Path) -> bool:
    return str(location).startswith("s3://")


def parse_s3(url: str) -> S3Location:
    rest = url[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket or ".." in prefix.split("/"):
        raise InputError(f"not an S3 location: {url!r} (expected s3://BUCKET/PREFIX)")
    return S3Location(bucket, prefix.strip("/"))


def client():
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(retries={"max_attempts": 5, "mode": "standard"},
                                            max_pool_connections=32))  # fmt: skip


def _error(exc: Exception, where: S3Location) -> ReelforgeError:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
    return ReelforgeError(f"{where}: S3 request failed ({code})")


def upload_tree(local: Path, where: S3Location, *, s3=None, manifest_max_age: int = 60,
                uploaded: dict[str, tuple[int, int]] | None = None) -> int:  # fmt: skip
    """Upload every file under ``local``, pointer files (playlists, manifests, version
    pointers: :data:`~reelforge.layout.POINTERS`) after everything else, the deepest first
    (a language's or version's own before the top's); returns the number of
    objects written. ``uploaded`` (relative path -> (size, mtime) of what an earlier call
    sent) skips files unchanged since, and is brought up to date."""
    from botocore.exceptions import BotoCoreError, ClientError

    register_mime_types()
    s3 = s3 or client()
    files = sorted(p for p in local.rglob("*") if p.is_file() and not p.name.startswith("."))
    pointers = sorted((p for p in files if p.name in POINTERS),
                      key=lambda p: (-len(p.relative_to(local).parts), p))  # fmt: skip
    ordered = [p for p in files if p not in pointers] + pointers
    count = 0
    try:
        for path in ordered:
            rel = path.relative_to(local).as_posix()
            st = path.stat()
            if uploaded is not None and uploaded.get(rel) == (st.st_size, st.st_mtime_ns):
                continue
            mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            extra = {"ContentType": mime, "CacheControl": cache_control(rel, manifest_max_age)}
            s3.upload_file(str(path), where.bucket, where.key(rel), ExtraArgs=extra)
            count += 1
            if uploaded is not None:
                uploaded[rel] = (st.st_size, st.st_mtime_ns)
    except (BotoCoreError, ClientError) as exc:
        raise _error(exc, where) from None
    return count


def download_file(where: S3Location, relative: str, dest: Path, *, s3=None) -> Path | None:
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = s3 or client()
    try:
        s3.download_file(where.bucket, where.key(relative), str(dest))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
            return None
        raise _error(exc, where) from None
    except BotoCoreError as exc:
        raise _error(exc, where) from None
    return dest
