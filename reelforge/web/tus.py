"""The tus 1.0 resumable-upload protocol at ``/api/uploads`` over an :class:`UploadStore`.

Extensions: creation, creation-with-upload, termination, expiration (no deferred length, no
checksums, no concatenation). ``X-HTTP-Method-Override`` on a POST to an upload stands for
PATCH, DELETE or HEAD.

Contract:

- Every response under the prefix, errors included, carries ``Tus-Resumable: 1.0.0``.
- Every route but OPTIONS depends on ``authenticate`` (a FastAPI dependency that returns the
  caller's owner id or raises ``HTTPException`` 401/403). OPTIONS is public, as the protocol
  has it: it tells only the server's version, extensions and size limit, and a browser's
  CORS preflight carries no credentials.
- An upload someone else owns, an id that is not one (``..``, odd characters, too long) and
  a path under the prefix that is no route all answer 404; an expired upload 410.
- Anything a client sends (malformed or huge numbers, bad base64, a dropped connection)
  gets a 4xx, never a 5xx; 507 only when the disk cannot hold an upload.
- Bodies are streamed to disk as they arrive (``request.stream()``), never held whole.

The app adds CORS: :data:`TUS_HEADERS` lists the headers to allow and to expose. An app-wide
``max_body_size`` would cut PATCH bodies; leave it unset for this router.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from reelforge.web.uploads import Upload, UploadError, UploadStore, encode_metadata, parse_metadata

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,termination,expiration"
OFFSET_TYPE = "application/offset+octet-stream"
PREFIX = "/api/uploads"
TUS_HEADERS: tuple[str, ...] = (
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Upload-Length",
    "Upload-Offset",
    "Upload-Metadata",
    "Upload-Expires",
    "Upload-Defer-Length",
    "Location",
    "X-HTTP-Method-Override",
)
"""The tus request and response headers: CORS ``allow_headers`` and ``expose_headers``."""

_DIGITS = re.compile(r"[0-9]{1,40}")
_RESUMABLE = {"Tus-Resumable": TUS_VERSION}


class TusRoute(APIRoute):
    """A route whose every answer carries ``Tus-Resumable``, and which turns the store's
    :class:`UploadError` into its HTTP status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def tus_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except UploadError as exc:
                raise HTTPException(exc.http_status, str(exc), headers=_RESUMABLE) from None
            except StarletteHTTPException as exc:
                headers = {**(exc.headers or {}), **_RESUMABLE}
                raise HTTPException(exc.status_code, exc.detail, headers=headers) from None
            response.headers["Tus-Resumable"] = TUS_VERSION
            return response

        return tus_handler


def tus_router(store: UploadStore, authenticate: Callable[..., Any]) -> APIRouter:
    """The tus endpoints at ``/api/uploads`` storing into ``store``; ``authenticate`` is the
    dependency naming the caller's owner id."""
    router = APIRouter(prefix=PREFIX, route_class=TusRoute, tags=["uploads"])
    auth = Depends(authenticate)
    capabilities = {
        "Tus-Version": TUS_VERSION,
        "Tus-Extension": TUS_EXTENSIONS,
        "Tus-Max-Size": str(store.max_size),
    }

    @router.options("", include_in_schema=False)
    @router.options("/{rest:path}", include_in_schema=False)
    def discover() -> Response:
        return Response(status_code=204, headers=capabilities)

    @router.post("", status_code=201)
    async def create(request: Request, owner: str = auth) -> Response:
        _require_version(request)
        headers = request.headers
        if "upload-defer-length" in headers:
            raise HTTPException(400, "Upload-Defer-Length is not supported")
        length = _number(headers.get("upload-length"), "Upload-Length", too_big=413)
        metadata = parse_metadata(headers.get("upload-metadata", ""))
        with_body = _media_type(headers) == OFFSET_TYPE
        if with_body and _declared_length(headers) > length:
            raise HTTPException(413, "the body is longer than Upload-Length")
        upload = await run_in_threadpool(store.create, owner, length, metadata)
        answer = {"Location": str(request.url_for("tus_upload", upload_id=upload.id))}
        if with_body:
            try:
                offset = await store.append(upload, 0, request.stream())
            except ClientDisconnect:
                return Response(status_code=400)  # nobody is listening; the upload expires
            except UploadError:
                await run_in_threadpool(store.delete, upload)
                raise
            answer["Upload-Offset"] = str(offset)
            upload = store.get(upload.id, owner) or upload
        return Response(status_code=201, headers={**answer, **_expires(upload)})

    @router.head("/{upload_id}", name="tus_upload")
    def head(request: Request, upload_id: str, owner: str = auth) -> Response:
        _require_version(request)
        upload = _find(store, upload_id, owner)
        headers = {
            "Upload-Offset": str(upload.offset),
            "Upload-Length": str(upload.length),
            "Cache-Control": "no-store",
            **_expires(upload),
        }
        if upload.metadata:
            headers["Upload-Metadata"] = encode_metadata(upload.metadata)
        return Response(status_code=200, headers=headers)

    @router.patch("/{upload_id}", status_code=204)
    async def patch(request: Request, upload_id: str, owner: str = auth) -> Response:
        _require_version(request)
        if _media_type(request.headers) != OFFSET_TYPE:
            raise HTTPException(415, f"Content-Type must be {OFFSET_TYPE}")
        offset = _number(request.headers.get("upload-offset"), "Upload-Offset", too_big=409)
        upload = _find(store, upload_id, owner)
        if offset != upload.offset:
            raise HTTPException(409, f"Upload-Offset must be {upload.offset}")
        if offset + _declared_length(request.headers) > upload.length:
            raise HTTPException(413, "the body goes past Upload-Length")
        try:
            offset = await store.append(upload, offset, request.stream())
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is listening; what came is kept
        upload = store.get(upload_id, owner) or upload
        return Response(status_code=204, headers={"Upload-Offset": str(offset), **_expires(upload)})

    @router.delete("/{upload_id}", status_code=204)
    def delete(request: Request, upload_id: str, owner: str = auth) -> Response:
        _require_version(request)
        upload = store.get(upload_id, owner, include_expired=True)
        if upload is None:
            raise HTTPException(404, "upload not found")
        store.delete(upload)
        return Response(status_code=204)

    @router.post("/{upload_id}", include_in_schema=False)
    async def override(request: Request, upload_id: str, owner: str = auth) -> Response:
        method = request.headers.get("x-http-method-override", "").strip().upper()
        if method == "PATCH":
            return await patch(request, upload_id, owner)
        if method in ("DELETE", "HEAD"):
            target = delete if method == "DELETE" else head
            return await run_in_threadpool(target, request, upload_id, owner)
        raise HTTPException(405, "method not allowed", headers={"Allow": "HEAD, PATCH, DELETE"})

    @router.api_route(
        "", methods=["GET", "HEAD", "PUT", "PATCH", "DELETE"], include_in_schema=False
    )
    def not_here(owner: str = auth) -> Response:
        raise HTTPException(405, "method not allowed", headers={"Allow": "OPTIONS, POST"})

    @router.api_route(
        "/{rest:path}", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )  # fmt: skip
    def nothing(rest: str, owner: str = auth) -> Response:
        raise HTTPException(404, "not found")

    return router


def _require_version(request: Request) -> None:
    if request.headers.get("tus-resumable", "").strip() != TUS_VERSION:
        raise HTTPException(
            412, f"Tus-Resumable must be {TUS_VERSION}", headers={"Tus-Version": TUS_VERSION}
        )


def _number(text: str | None, name: str, *, too_big: int) -> int:
    """A non-negative decimal header value: 400 if absent or malformed, ``too_big`` if it
    has more digits than any real size."""
    text = (text or "").strip()
    if not _DIGITS.fullmatch(text):
        if text.isascii() and text.isdigit():
            raise HTTPException(too_big, f"{name} is too large")
        raise HTTPException(400, f"{name} must be a non-negative decimal number")
    return int(text)


def _declared_length(headers: Mapping[str, str]) -> int:
    """The request's Content-Length (the server has checked its form), 0 if absent."""
    text = headers.get("content-length", "").strip()
    return int(text) if _DIGITS.fullmatch(text) else 0


def _media_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def _find(store: UploadStore, upload_id: str, owner: str) -> Upload:
    upload = store.get(upload_id, owner, include_expired=True)
    if upload is None:
        raise HTTPException(404, "upload not found")
    if upload.expired():
        raise HTTPException(410, "upload expired")
    return upload


def _expires(upload: Upload) -> dict[str, str]:
    if upload.complete:
        return {}
    return {"Upload-Expires": email.utils.formatdate(upload.expires, usegmt=True)}
