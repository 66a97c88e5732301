"""The pages' own files: the style sheet, the page scripts and the vendored tus client.

Contract: :class:`Assets` holds each file by URL name with a version (the first 12 hex
digits of its SHA-256); :meth:`Assets.url` gives ``/static/NAME?v=VERSION``, and
:meth:`Assets.response` answers it, cached for a year when the version matches (else for
five minutes), with an ETag. tus-js-client's browser bundle comes from the folder set-up
installs with npm (the one the origin serves hls.js from), as ``vendor/tus.min.js``.
"""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path

from fastapi import HTTPException, Request
from fastapi.responses import Response

STATIC = Path(__file__).parent / "static"
YEAR = "public, max-age=31536000, immutable"
VENDOR = {"vendor/tus.min.js": "tus-js-client/dist/tus.min.js"}
HLS_SCRIPT = "hls.js/dist/hls.min.js"


class Assets:
    """The style sheet, the page scripts and the vendored tus client, by URL name, each
    with a version (a digest of its bytes) for its URL."""

    def __init__(self, player_assets: Path | None) -> None:
        self.files: dict[str, tuple[bytes, str, str]] = {}
        for path in sorted(STATIC.iterdir()):
            if path.suffix in (".css", ".js", ".svg"):
                self._add(path.name, path.read_bytes())
        for name, rel in VENDOR.items():
            if player_assets is not None and (player_assets / rel).is_file():
                self._add(name, (player_assets / rel).read_bytes())
        self.hls = player_assets is not None and (player_assets / HLS_SCRIPT).is_file()

    def _add(self, name: str, data: bytes) -> None:
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind.endswith("javascript"):
            kind += "; charset=utf-8"
        self.files[name] = (data, kind, hashlib.sha256(data).hexdigest()[:12])

    def url(self, name: str) -> str:
        """The versioned URL of ``name`` (an empty string if it is not installed)."""
        found = self.files.get(name)
        return f"/static/{name}?v={found[2]}" if found else ""

    def response(self, request: Request, name: str) -> Response:
        found = self.files.get(name)
        if found is None:
            raise HTTPException(404, "not found")
        data, kind, version = found
        etag = f'"{version}"'
        cache = YEAR if request.query_params.get("v") == version else "public, max-age=300"
        headers = {"Cache-Control": cache, "ETag": etag, "X-Content-Type-Options": "nosniff"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(data, media_type=kind, headers=headers)
