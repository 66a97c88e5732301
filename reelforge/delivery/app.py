"""The origin: a Starlette app that serves published streams and a player page.

Contract: ``/media/<path>`` serves files under the root (GET and HEAD, single byte ranges,
ETag/Last-Modified validators, streaming MIME types, Cache-Control by asset class, CORS);
``/p/<token>/<path>`` the same for a signed playback token's stream; ``/`` shows the
player for a stream at the root, or a list of the streams one level down that the caller
may play (``/watch/<name>``; ``/p/<token>/watch/<name>`` and ``/p/<token>/`` for private
ones); ``/player/`` serves hls.js as installed by set-up; ``/img/...`` resizes images on
the fly (see :mod:`reelforge.delivery.image_service`); ``/_reelforge/token/<token>`` tells
an nginx origin in front (:mod:`reelforge.delivery.nginx_origin`) which stream folder a
token opens (200 with ``X-Reelforge-Scope: /SCOPE/``, ``/`` for the root, and
``X-Accel-Expires`` up to the token's last valid second) or that it opens nothing (403,
kept for a few seconds). What any route may read is decided
by one :class:`~reelforge.delivery.access.AccessRule` on the resolved real path. No
request a client can make gets a 5xx; a 5xx that happens anyway is logged with its
traceback.
"""

from __future__ import annotations

import html
import logging
import os
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

from reelforge import config
from reelforge.delivery.access import MASTER, AccessDenied, AccessRule, Grant
from reelforge.delivery.cache import (
    BYTE_RANGE,
    IGNORE,
    REFUSE,
    cache_control,
    range_action,
    register_mime_types,
)
from reelforge.delivery.compress import choose_encoding, compressed_response, is_compressible
from reelforge.delivery.image_service import ImageService
from reelforge.delivery.nginx_origin import DENIED_TTL, GRANT_TTL_CAP, SCOPE_HEADER
from reelforge.delivery.player import PlayerPages

MAX_HEADER_BYTES = 16 * 1024
MAX_PATH = 4096
log = logging.getLogger("reelforge.origin")


def _denied(exc: AccessDenied) -> HTTPException:
    return HTTPException(exc.status, exc.reason)


class MediaFiles(StaticFiles):
    """Files the access rule grants, with Cache-Control per asset class (``private`` for
    signed requests), compressed text and the origin's Range rule."""

    def __init__(self, *, access: AccessRule, manifest_max_age: int) -> None:
        super().__init__(directory=access.root, follow_symlink=False)
        self.access = access
        self.manifest_max_age = manifest_max_age

    async def serve(self, request: Request, path: str, token: str | None = None) -> Response:
        try:
            grant = self.access.decide(path, token)
        except AccessDenied as exc:
            raise _denied(exc) from None
        wanted = request.headers.get("range")
        if wanted is not None and range_action(wanted, grant.stat.st_size) == IGNORE:
            # RFC 9110: answer as if it were absent (the response reads the request's scope)
            request.scope["headers"] = [(k, v) for k, v in request.scope["headers"]
                                        if k != b"range"]  # fmt: skip
        response = self.file_response(str(grant.path), grant.stat, request.scope)
        if response.status_code in (200, 206, 304):
            value = cache_control(grant.rel, self.manifest_max_age)
            if token is not None or grant.private:
                value = value.replace("public", "private")
            response.headers["Cache-Control"] = value
        return response

    def file_response(self, full_path, stat_result, scope: Scope) -> Response:
        headers = Headers(scope=scope)
        wanted = headers.get("range")
        if wanted is not None and range_action(wanted, stat_result.st_size) == REFUSE:
            unsatisfiable = {"Content-Range": f"bytes */{stat_result.st_size}"}
            return Response(status_code=416, headers=unsatisfiable)
        encoding = choose_encoding(headers.get("accept-encoding", ""))
        if wanted is None and encoding and is_compressible(full_path):
            return compressed_response(Path(full_path), stat_result, encoding, headers)
        response = FileResponse(full_path, stat_result=stat_result)
        response.headers["etag"] = file_etag(stat_result)
        if self.is_not_modified(response.headers, headers):
            return NotModifiedResponse(response.headers)
        if wanted is not None and response.status_code == 200 and "if-range" not in headers:
            start, end = byte_range(wanted, stat_result.st_size)
            response = RangeResponse(full_path, start, end, stat_result.st_size, response)
        if is_compressible(full_path):
            response.headers["Vary"] = "Accept-Encoding"
        return response


def byte_range(value: str, size: int) -> tuple[int, int]:
    """``[start, end)`` of a Range header :func:`range_action` said to serve."""
    first, last = BYTE_RANGE.match(value.strip()).groups()
    if not first:
        return max(size - int(last), 0), size
    return int(first), min(int(last) + 1, size) if last else size


def file_etag(stat_result: os.stat_result) -> str:
    """A file's ETag as nginx makes it (``"<mtime hex>-<size hex>"``), so the nginx origin,
    which sends most files itself and passes the rest here, gives one file one ETag."""
    return f'"{int(stat_result.st_mtime):x}-{stat_result.st_size:x}"'


class RangeResponse(Response):
    """206 with one byte range of a file, read in one ``pread`` (on the event loop up to
    ``INLINE_RANGE`` bytes, the page cache's usual case; else in the thread pool, at most
    ``RANGE_CHUNK`` bytes a read), not in a thread hop per 64 KB as Starlette does. The
    headers are the whole file's response's, with Content-Range and Content-Length."""

    INLINE_RANGE = 256 * 1024
    RANGE_CHUNK = 1024 * 1024

    def __init__(self, path: str, start: int, end: int, size: int, whole: Response) -> None:
        self.path, self.start, self.end = path, start, end
        self.status_code = 206
        self.background = None
        self.raw_headers = [(k, v) for k, v in whole.raw_headers
                            if k not in (b"content-length", b"content-range")]  # fmt: skip
        self.raw_headers += [(b"content-range", f"bytes {start}-{end - 1}/{size}".encode()),
                             (b"content-length", str(end - start).encode())]  # fmt: skip

    async def __call__(self, scope: Scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 206, "headers": self.raw_headers})
        if scope["method"] == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            at = self.start
            while at < self.end:
                size = min(self.end - at, self.RANGE_CHUNK)
                if self.end - self.start <= self.INLINE_RANGE:
                    chunk = os.pread(fd, size, at)
                else:
                    chunk = await run_in_threadpool(os.pread, fd, size, at)
                if not chunk:  # the file shrank under us: end the body short
                    break
                at += len(chunk)
                await send({"type": "http.response.body", "body": chunk,
                            "more_body": at < self.end})  # fmt: skip
            if at < self.end:
                await send({"type": "http.response.body", "body": b""})
        finally:
            os.close(fd)


class PlayerAssets(StaticFiles):
    """The players' scripts as set-up installed them: compressed, cached for a day (their
    URLs carry no version) and revalidated in the background for a week after."""

    PLAYER_CACHE = "public, max-age=86400, stale-while-revalidate=604800"

    def __init__(self, *, directory: Path) -> None:
        super().__init__(directory=directory, follow_symlink=False)

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code in (200, 206, 304):
            response.headers["Cache-Control"] = self.PLAYER_CACHE
        return response

    def file_response(self, full_path, stat_result, scope: Scope) -> Response:
        headers = Headers(scope=scope)
        encoding = choose_encoding(headers.get("accept-encoding", ""))
        if headers.get("range") is None and encoding and is_compressible(full_path):
            return compressed_response(Path(full_path), stat_result, encoding, headers)
        return super().file_response(full_path, stat_result, scope)


class RequestLimits:
    """ASGI middleware: absurd requests are refused before any work (431 for headers over
    ``MAX_HEADER_BYTES`` in all, 414 for a path over ``MAX_PATH``), whatever the server
    in front allows."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            size = sum(len(k) + len(v) for k, v in scope.get("headers", []))
            status = 431 if size > MAX_HEADER_BYTES else 414 if len(
                scope.get("raw_path") or scope["path"].encode()) > MAX_PATH else 0  # fmt: skip
            if status:
                await Response(status_code=status)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class ErrorLog:
    """ASGI middleware: an exception escaping the app is logged with its traceback (the
    request's method and path, never its headers or query) before the 500 goes out."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception:
            if scope["type"] == "http":
                log.exception("500 for %s %r", scope.get("method"), scope.get("path"))
            raise


def _log_to_stderr() -> None:
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        log.addHandler(handler)


def _index_page(links: list[tuple[str, str]]) -> HTMLResponse:
    items = "".join(
        f'<li><a href="{html.escape(href)}">{html.escape(name)}</a></li>' for name, href in links
    )
    return HTMLResponse(
        f"<!doctype html><title>ReelForge</title><h1>Streams</h1><ul>{items or 'none'}</ul>",
        headers={"Cache-Control": "private, no-cache"},
    )


def _scope_header(scope: str) -> str | None:
    """``/SCOPE/`` (``/`` for the root) when nginx can compare it byte for byte with a
    decoded request path: printable ASCII without ``|``; else None."""
    value = f"/{scope}/" if scope else "/"
    return value if value.isascii() and value.isprintable() and "|" not in value else None


def token_answer(access: AccessRule, token: str, now: float | None = None) -> Response:
    """The token endpoint's answer for ``token`` (see the module docstring)."""
    now = time.time() if now is None else now
    try:
        scope, expires = access.token_scope(token, now)
    except AccessDenied:
        scope, expires = None, 0
    value = _scope_header(scope) if scope is not None else None
    if value is None:
        return Response(status_code=403, headers={"X-Accel-Expires": str(DENIED_TTL)})
    until = min(expires - 1, int(now) + GRANT_TTL_CAP)
    return Response(headers={SCOPE_HEADER: value, "X-Accel-Expires": f"@{until}"})


def create_app(root: str | Path | None = None, cfg: config.Config | None = None) -> Starlette:
    """Build the origin for the folder or ``s3://`` location ``root`` (default: the
    settings' ``serve_root``) with the settings ``cfg`` (default: :func:`config.load`)."""
    register_mime_types()
    _log_to_stderr()
    cfg = cfg if cfg is not None else config.load()
    root = root if root is not None else cfg.serve_root
    if root is not None and str(root).startswith("s3://"):
        return _s3_app(str(root), cfg)
    root = Path(root) if root is not None else None
    if root is None or not root.is_dir():
        raise ValueError(f"serve root is not a folder: {root}")
    access = AccessRule(root, cfg.playback_key)
    pages = PlayerPages(access, cfg.player_assets, cfg.manifest_max_age, cfg.player_url)
    media = MediaFiles(access=access, manifest_max_age=cfg.manifest_max_age)

    def page(request: Request, name: str, token: str | None) -> Response:
        try:
            grant: Grant = access.decide(name, token, kind="stream")
        except AccessDenied as exc:
            raise _denied(exc) from None
        return pages.response(request, grant, name or Path(access.root).name, token)

    def listing(request: Request, token: str | None) -> Response:
        """The root's own page when it is a stream, else the streams the caller may play."""
        if (Path(access.root) / MASTER).is_file():
            return page(request, "", token)
        try:
            scope = access.scope(token) if token is not None else None
        except AccessDenied as exc:
            raise _denied(exc) from None
        base = f"/p/{token}/" if token is not None else "/"
        return _index_page([(n, f"{base}watch/{n}") for n in access.streams(scope)])

    async def index(request: Request) -> Response:
        return listing(request, None)

    async def watch(request: Request) -> Response:
        return page(request, request.path_params["name"], None)

    async def signed_watch(request: Request) -> Response:
        token, name = request.path_params["token"], request.path_params["name"]
        if access.allows(name, token, kind="stream"):
            return page(request, name, token)
        return await media.serve(request, f"watch/{name}", token)  # a stream named watch

    async def signed(request: Request) -> Response:
        token, path = request.path_params["token"], request.path_params["path"]
        if path == "":
            return listing(request, token)
        return await media.serve(request, path, token)

    async def unsigned(request: Request) -> Response:
        return await media.serve(request, request.path_params["path"])

    async def token_scope(request: Request) -> Response:
        return token_answer(access, request.path_params["token"])

    images = ImageService(access, cfg.image_cache or root / ".cache" / "images",
                          cfg.image_key, cfg.image_unsigned)  # fmt: skip
    routes = [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/p/{token}/watch/{name:path}", signed_watch, methods=["GET", "HEAD"]),
        Route("/p/{token}/{path:path}", signed, methods=["GET", "HEAD"]),
        Route("/img/{signature}/{size}/{mode}/{path:path}", images.handle, methods=["GET", "HEAD"]),
        Route("/watch/{name:path}", watch, methods=["GET", "HEAD"]),
        Route("/media/{path:path}", unsigned, methods=["GET", "HEAD"]),
        Route("/_reelforge/token/{token}", token_scope, methods=["GET", "HEAD"]),
    ]
    if cfg.player_assets is not None:
        routes.append(Mount("/player", PlayerAssets(directory=cfg.player_assets)))
    return Starlette(routes=routes, middleware=_middleware())


def _middleware() -> list[Middleware]:
    return [
        Middleware(ErrorLog),
        Middleware(RequestLimits),
        Middleware(
            CORSMiddleware,
            allow_origins=["*"],
            allow_methods=["GET", "HEAD", "OPTIONS"],
            allow_headers=["Range"],
            expose_headers=["Content-Length", "Content-Range", "ETag"],
        ),
    ]


def _s3_app(url: str, cfg: config.Config) -> Starlette:
    """The origin over S3-compatible storage: ``/media/`` streamed through or redirected."""
    from reelforge.delivery.s3_media import S3Media
    from reelforge.storage import parse_s3

    media = S3Media(parse_s3(url), manifest_max_age=cfg.manifest_max_age, mode=cfg.s3_mode)

    pages = PlayerPages(None, cfg.player_assets, cfg.manifest_max_age, cfg.player_url)

    async def index(request: Request) -> Response:
        return pages.response(request, None, url)

    routes = [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/media/{path:path}", media.handle, methods=["GET", "HEAD"]),
    ]
    if cfg.player_assets is not None:
        routes.append(Mount("/player", PlayerAssets(directory=cfg.player_assets)))
    return Starlette(routes=routes, middleware=_middleware())


def app_from_env() -> Starlette:
    """Factory for ASGI servers started by import path (root from ``REELFORGE_SERVE_ROOT``)."""
    return create_app()
