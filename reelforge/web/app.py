"""The service: API, uploads, pages and the origin in one ASGI app.

Contract: :func:`create_app` builds it for a data folder (see
:mod:`reelforge.web.settings`): ``/api/...`` (JSON, OpenAPI at ``/api/openapi.json``),
``/api/uploads`` (tus 1.0), the pages, and under everything else the origin
(:func:`reelforge.delivery.app.create_app` over ``DIR/library``, with every rule it has:
signed private streams, caching headers, the image service). Its lifespan starts the
in-process job pool and the webhook sender and stops both (running jobs are interrupted
and resume on the next start). Nothing a client sends gets a 5xx: errors are
``{"error": {"code", "message", "field"}}`` with a 4xx status.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from reelforge import config
from reelforge.delivery.app import create_app as create_origin
from reelforge.errors import ReelforgeError
from reelforge.pipeline.jobs import JobStore
from reelforge.web import settings as web_settings
from reelforge.web.api import Service, api_router, error_body, error_field
from reelforge.web.auth import Auth
from reelforge.web.db import open_database
from reelforge.web.pages import pages_router
from reelforge.web.pool import JobPool
from reelforge.web.tokens import TokenStore
from reelforge.web.uploads import UploadStore
from reelforge.web.videos import VideoStore
from reelforge.web.webhooks import Webhooks

log = logging.getLogger("reelforge.web")


def _first_error(errors) -> tuple[str, str | None]:
    """The first validation error's message and the field it concerns (its JSON path)."""
    if not errors:
        return "invalid request", None
    err = errors[0]
    loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
    where = ".".join(loc) or None
    return f"{where or 'request'}: {err.get('msg', 'invalid')}", where


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ReelforgeError)
    async def reelforge_error(request: Request, exc: ReelforgeError) -> JSONResponse:
        status = 404 if exc.code == "not-found" else exc.http_status
        return JSONResponse(error_body(exc.code, str(exc), error_field(exc)), status_code=status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = {401: "unauthorized", 403: "forbidden", 404: "not-found",
                409: "conflict"}.get(exc.status_code, "http")  # fmt: skip
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=exc.headers)  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, field = _first_error(exc.errors())
        return JSONResponse(error_body("invalid", message, field), status_code=422)


def create_app(settings: web_settings.WebSettings, environ: Mapping[str, str],
               *, announce: str | None = None) -> FastAPI:  # fmt: skip
    """The service over ``settings.data``; ``environ`` is what job processes inherit;
    ``announce``: a line printed once the app has started (the CLI's URL)."""
    engine = open_database(settings.db_path)
    tokens = TokenStore(engine)
    auth = Auth(tokens, settings.session_key)
    cfg = dataclasses.replace(config.load(environ), state_dir=settings.state_dir,
                              playback_key=settings.playback_key,
                              serve_root=settings.library)  # fmt: skip
    jobs = JobStore(cfg.jobs_store_url)
    videos = VideoStore(engine, settings)
    uploads = UploadStore(settings.uploads, max_size=settings.upload_max_bytes,
                          expiry_seconds=settings.upload_expiry_s)  # fmt: skip
    webhooks = Webhooks(engine, settings.webhook_secret)
    service = Service(settings=settings, videos=videos, jobs=jobs, pool=None, uploads=uploads,
                      auth=auth, webhooks=webhooks)  # fmt: skip
    service.pool = JobPool(settings, videos, jobs, environ=environ, on_change=service.notify)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        service.pool.start()
        webhooks.start()
        if announce:
            print(announce, flush=True)
        try:
            yield
        finally:
            service.pool.stop()
            webhooks.stop()

    app = FastAPI(title="ReelForge", version="0.1.0", lifespan=lifespan,
                  openapi_url="/api/openapi.json", docs_url="/api/docs",
                  redoc_url=None)  # fmt: skip
    app.state.service = service
    install_error_handlers(app)
    from reelforge.web.tus import tus_router

    uploader = auth.require("upload")

    async def upload_owner(request: Request) -> str:
        return (await uploader(request)).token_id

    app.include_router(tus_router(uploads, upload_owner))
    app.include_router(api_router(service))
    app.include_router(pages_router(service))
    app.mount("/", create_origin(settings.library, cfg))
    return app


APP_FACTORY = "reelforge.web.app:app_from_env"


def app_from_env() -> FastAPI:
    """Factory for the ASGI server's worker process: the data folder from
    ``REELFORGE_WEB_DATA``, the line to print from ``REELFORGE_WEB_ANNOUNCE``."""
    environ = dict(os.environ)
    data = Path(environ.pop("REELFORGE_WEB_DATA"))
    announce = environ.pop("REELFORGE_WEB_ANNOUNCE", None)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    return create_app(web_settings.load(data, environ), environ, announce=announce)
