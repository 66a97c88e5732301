"""The player page: hls.js (or dash.js) with everything start-up needs inlined.

Contract: :class:`PlayerPages` answers a request for a stream's page (a stream the access
rule granted; every file the page reads or inlines is granted the same way, with the same
token) with HTML built from
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
from collections.abc import Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from reelforge.delivery.access import AccessDenied, AccessRule, Grant
from reelforge.delivery.compress import choose_encoding, compress_bytes
from reelforge.delivery.startup import bootstrap
from reelforge.layout import CURRENT, MASTER, MPD, REPORT

TEMPLATE = Path(__file__).with_name("templates") / "player.html"
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


Reader = Callable[[str], "bytes | None"]  # a path relative to the stream folder -> bytes


def _json(read: Reader, rel: str) -> dict:
    data = read(rel)
    try:
        value = json.loads(data) if data is not None else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _poster(read: Reader, version: str, base: str) -> str:
    prefix = f"{version}/" if version else ""
    files = _json(read, f"{prefix}{REPORT}").get("files", {})
    if not isinstance(files, dict):
        return ""
    preview = files.get("poster_preview")
    if isinstance(preview, str) and (data := read(prefix + preview)) is not None:
        return "data:image/webp;base64," + base64.b64encode(data).decode("ascii")
    poster = files.get("poster")
    jpeg = poster.get("jpeg") if isinstance(poster, dict) else None
    return f"{base}{prefix}{jpeg}" if isinstance(jpeg, str) else ""


def build_page(title: str, base: str, read: Reader, scripts: dict[str, str], fmt: str) -> str:
    """The page's HTML for a stream whose files are under the URL ``base`` (ending in
    ``/``) and readable, as far as the caller may read them, through ``read``."""
    version = _json(read, CURRENT).get("version") or ""  # a versioned stream
    version = version if isinstance(version, str) else ""
    boot = bootstrap(None, read=read) if fmt == "hls" else {}
    page = TEMPLATE.read_text(encoding="utf-8")
    return (
        page.replace("{{TITLE}}", html.escape(title))
        .replace("{{FORMAT}}", fmt)
        .replace("{{MASTER}}", html.escape(base + MASTER))
        .replace("{{MPD}}", html.escape(base + MPD))
        .replace("{{POSTER}}", html.escape(_poster(read, version, base)))
        .replace("{{PLAYERJS}}", html.escape(scripts.get(fmt, "")))
        .replace("{{BOOTSTRAP}}", json.dumps(boot).replace("</", "<\\/"))
    )


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _nothing(rel: str) -> None:
    return None


class PlayerPages:
    """Built, compressed pages for the streams ``access`` grants (``None``: a remote root
    whose files are not read here), cached per stream version and token."""

    def __init__(self, access: AccessRule | None, assets: Path | None, max_age: int,
                 player_url: str = "/player/") -> None:  # fmt: skip
        self.access = access
        self.scripts = player_scripts(assets, player_url)
        self.cache_control = f"public, max-age={max_age}, stale-while-revalidate={max_age * 5}"
        self.private_cache_control = f"private, max-age={max_age}"

    def _reader(self, stream_rel: str, token: str | None) -> Reader:
        access = self.access
        if access is None:
            return _nothing

        def read(rel: str) -> bytes | None:
            try:
                grant = access.decide(f"{stream_rel}/{rel}" if stream_rel else rel, token)
                return grant.path.read_bytes()
            except (AccessDenied, OSError):
                return None

        return read

    @functools.lru_cache(maxsize=256)  # noqa: B019 (one instance per app, lives as long)
    def _built(self, stream_rel: str, title: str, fmt: str, encoding: str | None,
               token: str | None, _versions: tuple[int, int]) -> tuple[bytes, str]:  # fmt: skip
        base = f"/p/{token}/" if token is not None else "/media/"
        base += f"{stream_rel}/" if stream_rel else ""
        read = self._reader(stream_rel, token)
        body = build_page(title, base, read, self.scripts, fmt).encode("utf-8")
        tag = hashlib.sha256(body).hexdigest()[:20]
        if encoding:
            body = compress_bytes(body, encoding)
        return body, f'"{tag}-{encoding or "identity"}"'

    def response(self, request: Request, grant: Grant | None, title: str,
                 token: str | None = None) -> Response:  # fmt: skip
        """The page for the stream ``grant`` names (None: the remote root's)."""
        fmt = "dash" if request.query_params.get("format") == "dash" else "hls"
        encoding = choose_encoding(request.headers.get("accept-encoding", ""))
        if grant is None:
            rel, versions = "", (0, 0)
        else:
            rel = grant.rel
            versions = (_mtime(grant.path / MASTER), _mtime(grant.path / CURRENT))
        body, etag = self._built(rel, title, fmt, encoding, token, versions)
        private = token is not None or (grant is not None and grant.private)
        headers = {"ETag": etag, "Vary": "Accept-Encoding",
                   "Cache-Control": self.private_cache_control if private
                   else self.cache_control}  # fmt: skip
        if encoding:
            headers["Content-Encoding"] = encoding
        match = request.headers.get("if-none-match", "")
        if etag in [m.strip() for m in match.split(",")]:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="text/html; charset=utf-8", headers=headers)
