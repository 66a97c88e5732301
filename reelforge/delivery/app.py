"""The origin: a Starlette app that serves published streams and a player page.

Contract: ``/media/<path>`` serves files under the root (GET and HEAD, single byte ranges,
ETag/Last-Modified validators, streaming MIME types, Cache-Control by asset class, CORS);
``/`` shows the player for a stream at the root, or a list of the streams found one level
down (``/watch/<name>``); ``/player/`` serves hls.js as installed by set-up; ``/img/...``
resizes images on the fly (see :mod:`reelforge.delivery.image_service`). Paths outside the
root are never served.
"""

from __future__ import annotations

import html
from pathlib import Path, PurePosixPath

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from reelforge import config
from reelforge.delivery.cache import cache_control, range_refused, register_mime_types
from reelforge.delivery.compress import choose_encoding, compressed_response, is_compressible
from reelforge.delivery.image_service import ImageService
from reelforge.delivery.player import PlayerPages
from reelforge.delivery.signing import TokenError, check_token

MASTER = "master.m3u8"
PRIVATE_MARKER = ".private"
MAX_HEADER_BYTES = 16 * 1024
MAX_PATH = 4096


class MediaFiles(StaticFiles):
    """StaticFiles with Cache-Control per asset class, compressed text, strict ranges and
    private streams (folders holding a ``.private`` file answer only signed requests)."""

    def __init__(self, *, directory: Path, manifest_max_age: int, signed: bool = False) -> None:
        super().__init__(directory=directory, follow_symlink=False)
        self.root = directory
        self.manifest_max_age = manifest_max_age
        self.signed = signed

    def _is_private(self, path: str) -> bool:
        folder = self.root
        for part in PurePosixPath(path).parts[:-1]:
            folder = folder / part
            if (folder / PRIVATE_MARKER).is_file():
                return True
        return False

    async def get_response(self, path: str, scope: Scope) -> Response:
        if not self.signed and self._is_private(path):
            raise HTTPException(403, "this stream needs a signed URL")
        if PurePosixPath(path).name.startswith("."):
            raise HTTPException(404)  # markers, caches and partial files are not served
        response = await super().get_response(path, scope)
        if response.status_code in (200, 206, 304):
            response.headers["Cache-Control"] = cache_control(path, self.manifest_max_age)
        return response

    def file_response(self, full_path, stat_result, scope: Scope) -> Response:
        headers = Headers(scope=scope)
        wanted = headers.get("range")
        if wanted is not None and range_refused(wanted):
            unsatisfiable = {"Content-Range": f"bytes */{stat_result.st_size}"}
            return Response(status_code=416, headers=unsatisfiable)
        encoding = choose_encoding(headers.get("accept-encoding", ""))
        if wanted is None and encoding and is_compressible(full_path):
            return compressed_response(Path(full_path), stat_result, encoding, headers)
        response = super().file_response(full_path, stat_result, scope)
        if is_compressible(full_path):
            response.headers["Vary"] = "Accept-Encoding"
        return response


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


def _streams(root: Path) -> list[str]:
    return sorted(p.parent.name for p in root.glob(f"*/{MASTER}"))


def create_app(root: str | Path | None = None) -> Starlette:
    """Build the origin for the folder or ``s3://`` location ``root`` (default:
    ``REELFORGE_SERVE_ROOT``)."""
    register_mime_types()
    cfg = config.load()
    root = root if root is not None else cfg.serve_root
    if root is not None and str(root).startswith("s3://"):
        return _s3_app(str(root), cfg)
    root = Path(root) if root is not None else None
    if root is None or not root.is_dir():
        raise ValueError(f"serve root is not a folder: {root}")
    root = root.resolve()
    pages = PlayerPages(root, cfg.player_assets, cfg.manifest_max_age, cfg.player_url)

    async def index(request: Request) -> Response:
        if (root / MASTER).is_file():
            return pages.response(request, "", root.name)
        items = "".join(
            f'<li><a href="/watch/{html.escape(n)}">{html.escape(n)}</a></li>'
            for n in _streams(root)
        )
        return HTMLResponse(
            f"<!doctype html><title>ReelForge</title><h1>Streams</h1><ul>{items or 'none'}</ul>"
        )

    async def watch(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _streams(root):
            raise HTTPException(404, "no such stream")
        return pages.response(request, name, name)

    images = ImageService(root, cfg.image_cache or root / ".cache" / "images",
                          cfg.image_key, cfg.image_unsigned)  # fmt: skip
    media = MediaFiles(directory=root, manifest_max_age=cfg.manifest_max_age)
    signed_media = MediaFiles(directory=root, manifest_max_age=cfg.manifest_max_age, signed=True)

    async def signed(request: Request) -> Response:
        if cfg.playback_key is None:
            raise HTTPException(404, "signed playback is not configured")
        path = request.path_params["path"]
        try:
            check_token(cfg.playback_key, request.path_params["token"], path)
        except TokenError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        response = await signed_media.get_response(path, request.scope)
        response.headers["Cache-Control"] = response.headers.get(
            "Cache-Control", "private").replace("public", "private")  # fmt: skip
        return response

    routes = [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/p/{token}/{path:path}", signed, methods=["GET", "HEAD"]),
        Route("/img/{signature}/{size}/{mode}/{path:path}", images.handle, methods=["GET", "HEAD"]),
        Route("/watch/{name}", watch, methods=["GET", "HEAD"]),
        Mount("/media", media),
    ]
    if cfg.player_assets is not None:
        routes.append(Mount("/player", PlayerAssets(directory=cfg.player_assets)))
    return Starlette(routes=routes, middleware=_middleware())


def _middleware() -> list[Middleware]:
    return [
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

    pages = PlayerPages(Path("/nonexistent"), cfg.player_assets, cfg.manifest_max_age,
                        cfg.player_url)  # fmt: skip

    async def index(request: Request) -> Response:
        return pages.response(request, "", url)

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
