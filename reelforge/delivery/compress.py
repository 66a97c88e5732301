"""Compressed playlists, MPDs and subtitles, made once per file version.

Contract: :func:`is_compressible` says whether a served file is text worth compressing
(HLS playlists, DASH MPDs, WebVTT, JSON, the players' JavaScript);
:func:`choose_encoding` picks ``br`` or ``gzip`` from an ``Accept-Encoding`` header
(q-values honoured, ``br`` preferred); :func:`compress_bytes` compresses bytes in memory;
:func:`compressed_response` answers with the compressed body (kept in a small in-memory
cache keyed by path, size and modification time), ``Content-Encoding``, ``Vary:
Accept-Encoding`` and an ETag of its own, or 304 when ``If-None-Match`` matches it.
Ranges are served uncompressed (by the caller).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import mimetypes
import os
from email.utils import formatdate
from pathlib import Path

import brotli
from starlette.datastructures import Headers
from starlette.responses import Response

COMPRESSIBLE = (".m3u8", ".mpd", ".vtt", ".json", ".js")
MAX_COMPRESS = 8 * 1024 * 1024  # bigger text files go out as they are


def is_compressible(path: str | os.PathLike) -> bool:
    return str(path).endswith(COMPRESSIBLE)


def choose_encoding(accept: str) -> str | None:
    weights: dict[str, float] = {}
    for item in accept.lower().split(",")[:32]:
        name, _, params = item.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        weights[name.strip()] = q
    star = weights.get("*", 0.0)
    for enc in ("br", "gzip"):
        if weights.get(enc, star) > 0:
            return enc
    return None


def compress_bytes(data: bytes, encoding: str) -> bytes:
    """``data`` compressed as ``br`` (quality 9, text mode) or ``gzip`` (level 9)."""
    if encoding == "br":
        return brotli.compress(data, quality=9, mode=brotli.MODE_TEXT)
    return gzip.compress(data, compresslevel=9, mtime=0)


@functools.lru_cache(maxsize=512)
def _compress(path: str, size: int, mtime_ns: int, encoding: str) -> bytes:
    return compress_bytes(Path(path).read_bytes(), encoding)


def compressed_response(path: Path, stat: os.stat_result, encoding: str,
                        headers: Headers) -> Response:  # fmt: skip
    if stat.st_size > MAX_COMPRESS:
        encoding = "identity"
        body = path.read_bytes()
    else:
        body = _compress(str(path), stat.st_size, stat.st_mtime_ns, encoding)
    tag = hashlib.md5(f"{stat.st_mtime_ns}-{stat.st_size}".encode(), usedforsecurity=False)
    etag = f'"{tag.hexdigest()}-{encoding}"'
    out = {
        "ETag": etag,
        "Last-Modified": formatdate(stat.st_mtime, usegmt=True),
        "Vary": "Accept-Encoding",
        "Content-Encoding": encoding,
    }
    if encoding == "identity":
        out.pop("Content-Encoding")
    match = headers.get("if-none-match")
    if match and (match.strip() == "*" or etag in [m.strip() for m in match.split(",")]):
        return Response(status_code=304, headers=out)
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return Response(body, media_type=mime, headers=out)
