"""The player page: hls.js (or dash.js) with everything start-up needs inlined.

Contract: :class:`PlayerPages` answers a request for a stream's page with HTML built from
``templates/player.html``: the title, the stream's URLs, the poster (its small preview
inlined as a data URI, so it shows before any request; else the JPEG's URL), the
start-up files of :func:`reelforge.delivery.startup.bootstrap` and the player script for
``?format=hls`` (default) or ``?format=dash``. Pages are built once per stream version
and format (keyed by the master's and ``current.json``'s modification times), sent
compressed (brotli or gzip, as the request accepts) with an ETag of their own and the
same Cache-Control as manifests; ``If-None-Match`` gets 304.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from reelforge.delivery.compress import choose_encoding, compress_bytes
from reelforge.delivery.startup import bootstrap

TEMPLATE = Path(__file__).with_name("templates") / "player.html"
MASTER = "master.m3u8"
MPD = "manifest.mpd"
PLAYER_SCRIPTS = {
    "hls": "hls.js/dist/hls.min.js",
    "dash": "dashjs/dist/modern/umd/dash.all.min.js",
}


def player_scripts(assets: Path | None, base: str = "/player/") -> dict[str, str]:
    """Format -> the URL of its installed player script (under ``base``: ``/player/`` on
    this origin, or a static host or CDN that carries the same files)."""
    if assets is None:
        return {}
    return {fmt: f"{base}{rel}" for fmt, rel in PLAYER_SCRIPTS.items()
            if (assets / rel).is_file()}  # fmt: skip


def _poster(stream: Path, version: str, prefix: str) -> str:
    report_path = stream / version / "report.json"
    try:
        files = json.loads(report_path.read_text()).get("files", {})
    except (OSError, ValueError):
        return ""
    preview = files.get("poster_preview")
    if preview:
        try:
            data = (stream / version / preview).read_bytes()
            return "data:image/webp;base64," + base64.b64encode(data).decode("ascii")
        except OSError:
            pass
    jpeg = files.get("poster", {}).get("jpeg")
    return f"/media/{prefix + '/' if prefix else ''}{jpeg}" if jpeg else ""


def build_page(stream_prefix: str, title: str, root: Path, scripts: dict[str, str],
               fmt: str) -> str:  # fmt: skip
    """The page's HTML for the stream at ``root/stream_prefix`` (``""``: the root itself)."""
    stream = root / stream_prefix if stream_prefix else root
    version = ""
    if (stream / "current.json").is_file():  # a versioned stream: files of the current version
        try:
            version = json.loads((stream / "current.json").read_text()).get("version") or ""
        except (OSError, ValueError):
            version = ""
    prefix = "/".join(p for p in (stream_prefix, version) if p)
    base = f"/media/{stream_prefix + '/' if stream_prefix else ''}"
    boot = bootstrap(stream) if fmt == "hls" else {}
    page = TEMPLATE.read_text(encoding="utf-8")
    return (
        page.replace("{{TITLE}}", html.escape(title))
        .replace("{{FORMAT}}", fmt)
        .replace("{{MASTER}}", html.escape(base + MASTER))
        .replace("{{MPD}}", html.escape(base + MPD))
        .replace("{{POSTER}}", html.escape(_poster(stream, version, prefix)))
        .replace("{{PLAYERJS}}", html.escape(scripts.get(fmt, "")))
        .replace("{{BOOTSTRAP}}", json.dumps(boot).replace("</", "<\\/"))
    )


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


class PlayerPages:
    """Built, compressed pages for the streams under ``root``, cached per stream version."""

    def __init__(self, root: Path, assets: Path | None, max_age: int,
                 player_url: str = "/player/") -> None:  # fmt: skip
        self.root = root
        self.scripts = player_scripts(assets, player_url)
        self.cache_control = f"public, max-age={max_age}, stale-while-revalidate={max_age * 5}"

    @functools.lru_cache(maxsize=256)  # noqa: B019 (one instance per app, lives as long)
    def _built(self, prefix: str, title: str, fmt: str, encoding: str | None,
               _versions: tuple[int, int]) -> tuple[bytes, str]:  # fmt: skip
        body = build_page(prefix, title, self.root, self.scripts, fmt).encode("utf-8")
        tag = hashlib.sha256(body).hexdigest()[:20]
        if encoding:
            body = compress_bytes(body, encoding)
        return body, f'"{tag}-{encoding or "identity"}"'

    def response(self, request: Request, prefix: str, title: str) -> Response:
        fmt = "dash" if request.query_params.get("format") == "dash" else "hls"
        encoding = choose_encoding(request.headers.get("accept-encoding", ""))
        stream = self.root / prefix if prefix else self.root
        versions = (_mtime(stream / MASTER), _mtime(stream / "current.json"))
        body, etag = self._built(prefix, title, fmt, encoding, versions)
        headers = {"ETag": etag, "Cache-Control": self.cache_control, "Vary": "Accept-Encoding"}
        if encoding:
            headers["Content-Encoding"] = encoding
        match = request.headers.get("if-none-match", "")
        if etag in [m.strip() for m in match.split(",")]:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="text/html; charset=utf-8", headers=headers)
