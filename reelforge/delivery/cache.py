"""Cache-Control by asset class, and MIME types for streaming files.

Contract: :func:`range_action` says what the origin does with a Range header;
:func:`cache_control` maps a served path to its header value: files whose names
carry a content hash never change and are cached for a year as ``immutable``; manifests are
short-lived with ``stale-while-revalidate``; anything else gets a short default.
"""

from __future__ import annotations

import mimetypes
import re

from reelforge.layout import HASHED

MANIFEST_SUFFIXES = (".m3u8", ".mpd", ".vtt", ".json")
IMMUTABLE = "public, max-age=31536000, immutable"

MIME_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mpd": "application/dash+xml",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".m4a": "audio/mp4",
    ".vtt": "text/vtt",
    ".avif": "image/avif",
    ".webp": "image/webp",
    ".jpg": "image/jpeg",
}


def register_mime_types() -> None:
    """Teach :mod:`mimetypes` the streaming types (idempotent)."""
    for suffix, mime in MIME_TYPES.items():
        mimetypes.add_type(mime, suffix)


MAX_RANGE_HEADER = 100
BYTE_RANGE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$", re.IGNORECASE)
SERVE, IGNORE, REFUSE = "serve", "ignore", "refuse"


def range_action(value: str, size: int | None = None) -> str:
    """What the origin does with a Range header (RFC 9110, section 14.2), the same for
    every origin: ``"refuse"`` (416) for more than one range (many small ranges are a way
    to make a server work hard), oversized headers and ranges that cannot be satisfied
    (a start at or past ``size``, when known; a zero-length suffix); ``"ignore"`` (200 with
    the whole body) for other units and for ranges that do not parse or run backwards
    (``bytes=5-2``); ``"serve"`` for one valid byte range."""
    if len(value) > MAX_RANGE_HEADER or "," in value:
        return REFUSE
    match = BYTE_RANGE.match(value.strip())
    if not match or not (match[1] or match[2]):
        return IGNORE
    first, last = match[1], match[2]
    if first and last and int(last) < int(first):
        return IGNORE
    if not first and int(last) == 0:
        return REFUSE
    if first and size is not None and int(first) >= size:
        return REFUSE
    return SERVE


def cache_control(path: str, manifest_max_age: int = 60) -> str:
    if HASHED.search(path):
        return IMMUTABLE
    if path.endswith(MANIFEST_SUFFIXES):
        return f"public, max-age={manifest_max_age}, stale-while-revalidate={manifest_max_age * 5}"
    return "public, max-age=300"
