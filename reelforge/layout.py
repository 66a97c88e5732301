"""The stream's naming rules: the one place that says what a published folder's files are called.

Contract: a published stream folder holds, at its top, the manifests players start from
(:data:`MASTER`, :data:`MPD`), the report (:data:`REPORT`) and the extras (poster,
preview, sprites, fallback, plot); tracks live in :func:`track_directory` folders, each
with an init segment, media segments and its playlists. Every file whose bytes never
change is named by :func:`content_name` (``stem-<first 10 hex digits of SHA-256>.ext``),
so a CDN may cache it forever (:data:`HASHED` recognises such names). A versioned stream
folder holds one folder per version (:func:`new_version_name`, :data:`VERSION`) and, at
its top, the pointer files (:data:`POINTERS`): the current version's manifests and
:data:`CURRENT`. Packaging, thumbnails, the fallback, manifests, versions, storage and the
origin all take their names from here.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time

HASH_CHARS = 10
HASHED = re.compile(r"-[0-9a-f]{10}\.[A-Za-z0-9]+$")  # a content-hashed file name

# at the top of a stream folder
MASTER = "master.m3u8"  # HLS multivariant playlist
MPD = "manifest.mpd"  # DASH MPD
REPORT = "report.json"
CURRENT = "current.json"  # a versioned stream folder's pointer to its current version
IMAGES_MANIFEST = "manifest.json"  # the top of an images output
POINTERS = (MASTER, MPD, CURRENT, IMAGES_MANIFEST)  # uploaded last: they name the rest
RATE_QUALITY_PLOT = "rate-quality.svg"
THUMBNAILS_VTT = "thumbnails.vtt"
SPRITE_DIR = "thumbs"

# inside a track's folder
MEDIA_PLAYLIST = "playlist.m3u8"
IFRAME_PLAYLIST = "iframes.m3u8"

# stems of content-named files
POSTER = "poster"
POSTER_PREVIEW = "poster-preview"
FALLBACK = "fallback"
INIT = "init"

VERSION = re.compile(r"^v\d{8}T\d{6}Z-[0-9a-f]{4}$")


def content_hash(data: bytes) -> str:
    """The first :data:`HASH_CHARS` hex digits of SHA-256(``data``)."""
    return hashlib.sha256(data).hexdigest()[:HASH_CHARS]


def content_name(stem: str, data: bytes, suffix: str) -> str:
    """``stem-<hash>.suffix`` where the hash is the first hex digits of SHA-256(data)."""
    return f"{stem}-{content_hash(data)}{suffix}"


def segment_stem(number: int) -> str:
    """The stem of media segment ``number`` (counted from 0): ``seg-00000``."""
    return f"seg-{number:05d}"


def sprite_stem(number: int) -> str:
    return f"sprite-{number:03d}"


def video_track_id(codec: str, width: int, height: int, kbps: int) -> str:
    """``h264-1280x720-3000k``: a video rendition's name and folder."""
    return f"{codec}-{width}x{height}-{kbps}k"


def audio_track_id(kbps: int, language: str | None = None) -> str:
    """``aac-128k`` for the main audio, ``aac-128k-fr`` for an alternate language's."""
    return f"aac-{kbps}k" + (f"-{language}" if language else "")


def track_directory(kind: str, track_id: str) -> str:
    """A track's folder relative to the stream folder (POSIX): ``video/<id>``,
    ``audio/<id>``, ``subtitles/<id>``."""
    return f"{kind}/{track_id}"


def new_version_name(now: float | None = None) -> str:
    """A new version folder's name: ``v<UTC time>-<4 random hex digits>``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now if now is not None else time.time()))
    return f"v{stamp}-{secrets.token_hex(2)}"
