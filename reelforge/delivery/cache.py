"""Cache-Control by asset class, and MIME types for streaming files.

Contract: :func:`range_refused` says which Range headers the origin refuses outright;
:func:`cache_control` maps a served path to its header value: files whose names
carry a content hash never change and are cached for a year as ``immutable``; manifests are
short-lived with ``stale-while-revalidate``; anything else gets a short default.
"""

from __future__ import annotations

import mimetypes
import re

HASHED = re.compile(r"-[0-9a-f]{10}\.[A-Za-z0-9]+$")
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


def range_refused(value: str) -> bool:
    """Whether a Range header gets 416 before any work: one range per request (many
    small ranges are a way to make a server work hard), and no oversized headers."""
    return len(value) > MAX_RANGE_HEADER or "," in value


def cache_control(path: str, manifest_max_age: int = 60) -> str:
    if HASHED.search(path):
        return IMMUTABLE
    if path.endswith(MANIFEST_SUFFIXES):
        return f"public, max-age={manifest_max_age}, stale-while-revalidate={manifest_max_age * 5}"
    return "public, max-age=300"
