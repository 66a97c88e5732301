"""The on-the-fly image endpoint of the origin: ``/img/{signature}/{W}x{H}/{mode}/{path}``.

Contract: ``path`` names a source image under the served root (storage paths only: no
URLs are fetched). ``signature`` is the HMAC-SHA256 of ``{W}x{H}/{mode}/{path}`` under
``REELFORGE_IMAGE_KEY`` (see :mod:`reelforge.delivery.signing`); the word ``unsafe`` is
accepted instead only when ``REELFORGE_IMAGE_UNSIGNED=1``. The format is chosen from the
request's ``Accept`` (AVIF, then WebP, else JPEG, or PNG for pictures with alpha) and the
answer says ``Vary: Accept``; results are rendered once (one render per key at a time)
into the cache folder and served with ``Cache-Control: public, max-age=31536000,
immutable`` and an ETag. Answers: 403 bad or missing signature, 400 malformed size or
mode, 404 no such file (or outside the root, as the origin's access rule decides: a
private folder's images are 403), 413 too large (bytes or pixels, checked
before decoding), 415 not an image. Never a 500 for bad input.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from reelforge.delivery.access import AccessDenied, AccessRule, Grant
from reelforge.delivery.cache import IMMUTABLE
from reelforge.delivery.signing import sign, verify
from reelforge.errors import InputError
from reelforge.fsutil import write_bytes_atomic
from reelforge.images.encoders import FORMATS
from reelforge.images.source import MAX_BYTES, MAX_PIXELS
from reelforge.images.transform import MODES, render

MAX_SIDE = 4096
SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")
RENDER_VERSION = "1"  # bump when rendering changes, so cached results are not reused


def image_path(width: int, height: int, mode: str, path: str, key: bytes | None) -> str:
    """The URL path for an image (signed with ``key``, or ``unsafe`` without one)."""
    message = f"{width}x{height}/{mode}/{path.lstrip('/')}"
    return f"/img/{sign(key, message) if key else 'unsafe'}/{message}"


def negotiate(accept: str) -> str:
    accept = accept.lower()
    if "image/avif" in accept:
        return "avif"
    if "image/webp" in accept:
        return "webp"
    return "jpeg"


class ImageService:
    def __init__(self, access: AccessRule, cache: Path, key: bytes | None, unsigned: bool,
                 max_pixels: int = MAX_PIXELS, max_bytes: int = MAX_BYTES) -> None:  # fmt: skip
        self.access, self.cache, self.key, self.unsigned = access, cache, key, unsigned
        self.limits = {"max_pixels": max_pixels, "max_bytes": max_bytes}
        self._locks: dict[str, asyncio.Lock] = {}

    def _check_signature(self, signature: str, message: str) -> None:
        if signature == "unsafe":
            if not self.unsigned:
                raise HTTPException(403, "unsigned image URLs are not enabled")
            return
        if self.key is None or not verify(self.key, message, signature):
            raise HTTPException(403, "bad signature")

    def _source(self, rel: str) -> Grant:
        """The source as the origin's access rule grants it (no token: private folders'
        images are not resized here)."""
        try:
            return self.access.decide(rel)
        except AccessDenied as exc:
            raise HTTPException(exc.status, "no such image" if exc.status == 404
                                else exc.reason) from None  # fmt: skip

    async def handle(self, request: Request) -> Response:
        signature = request.path_params["signature"]
        size, mode, rel = (request.path_params[k] for k in ("size", "mode", "path"))
        self._check_signature(signature, f"{size}/{mode}/{rel}")
        match = SIZE.match(size)
        if not match or mode not in MODES:
            raise HTTPException(400, "expected /img/SIGNATURE/WxH/fit|fill|smart/PATH")
        width, height = int(match[1]), int(match[2])
        if width > MAX_SIDE or height > MAX_SIDE or (mode != "fit" and not (width and height)):
            raise HTTPException(400, f"sizes are 0-{MAX_SIDE}; fill and smart need both")
        grant = self._source(rel)
        source, stat = grant.path, grant.stat
        fmt = negotiate(request.headers.get("accept", ""))
        ident = f"{RENDER_VERSION}|{rel}|{stat.st_size}|{stat.st_mtime_ns}|{size}|{mode}|{fmt}"
        key = hashlib.sha256(ident.encode()).hexdigest()[:32]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            found = [p for p in (self.cache / key[:2]).glob(f"{key}.*")] if self.cache else []
            if not found:
                found = [await run_in_threadpool(self._render, source, width, height, mode,
                                                 fmt, key)]  # fmt: skip
        self._locks.pop(key, None)
        target = found[0]
        mime = next(f.mime for f in FORMATS.values() if f.ext == target.suffix[1:])
        return FileResponse(target, media_type=mime,
                            headers={"Cache-Control": IMMUTABLE, "Vary": "Accept"})  # fmt: skip

    def _render(self, source: Path, width: int, height: int, mode: str, fmt: str,
                key: str) -> Path:  # fmt: skip
        try:
            data = render(source, width, height, mode, fmt, **self.limits)
        except InputError as exc:
            reason = exc.reason
            if "limit" in reason:
                raise HTTPException(413, reason) from None
            raise HTTPException(415, reason) from None
        ext = "png" if data.startswith(b"\x89PNG") else FORMATS[fmt].ext
        folder = self.cache / key[:2]
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{key}.{ext}"
        write_bytes_atomic(final, data)  # two requests for one variant never share a temporary
        return final
