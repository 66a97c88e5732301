"""The service's pages: server-rendered HTML over the same service the API uses.

Contract: :func:`pages_router` answers ``/signin`` (a form taking an API token; it sets
the ``rf_session`` cookie: HttpOnly, SameSite=Strict, Secure over HTTPS, Path=/) and
``/signout``; ``/`` (the caller's videos, an admin's: everyone's, paged), ``/upload``
(resumable tus uploads with a progress bar per file; a story's YAML and folder), the
video page ``/videos/{id}`` (live steps from the events stream, then the player),
``/videos/{id}/report`` (charts drawn on the server) and ``/jobs`` (admin: failed videos
and jobs, with retry). A page asked for without a session redirects to
``/signin?next=PATH`` (only a same-site relative path is followed back). Every form that
changes something carries the session's CSRF token and is refused (403) without it, or
when the browser says it comes from another site. Pages work without scripts (forms,
a plain upload, a refresh while a video is processing) and do more with them; every
asset is served here (``/static/...``, content-versioned URLs cached for a year). All
text is escaped (Jinja2 autoescape); nothing a client sends gets a 5xx.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import jinja2
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from reelforge import config
from reelforge.errors import ReelforgeError
from reelforge.pipeline.cache import StepCache
from reelforge.web.api import Service, VideoRequest
from reelforge.web.assets import HLS_SCRIPT, Assets
from reelforge.web.auth import COOKIE, SESSION_SECONDS
from reelforge.web.reports import make_readings, publish_charts
from reelforge.web.tokens import Principal
from reelforge.web.uploads import encode_metadata, parse_metadata
from reelforge.web.videos import ERRORED, OPEN, READY, PublishRequest, Video

TEMPLATES = Path(__file__).parent / "templates"
PAGE_SIZE = 24
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:; "
       "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
       "object-src 'none'")  # fmt: skip
PAGE_HEADERS = {"Cache-Control": "no-store", "Content-Security-Policy": CSP,
                "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
                "X-Content-Type-Options": "nosniff"}  # fmt: skip
STEP_NAMES = {"face-check": "Portrait check", "voice-turn": "Voice", "talk-shot": "Lip-sync",
              "assemble": "Assemble", "publish-stream": "Publish",
              "publish": "Publish"}  # fmt: skip


def safe_next(value: object, default: str = "/") -> str:
    """``value`` if it is a path on this site (``/...``, not ``//host`` nor ``/\\host``,
    no scheme, no control characters), else ``default``: never an open redirect."""
    if not isinstance(value, str) or not value.startswith("/") or len(value) > 2000:
        return default
    if value.startswith(("//", "/\\")) or "\\" in value or not value.isprintable():
        return default
    parts = urllib.parse.urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


class Refused(Exception):  # noqa: N818 (an answer, not a failure)
    """A page's answer other than its content (a redirect or an error page)."""

    def __init__(self, response: Response) -> None:
        self.response = response


# --- the router ------------------------------------------------------------------------------


def pages_router(service: Service) -> APIRouter:
    """The pages over ``service`` (see the module docstring)."""
    cfg = config.load(service.pool.environ)
    assets = Assets(cfg.player_assets)
    cache = StepCache(cfg.step_cache_dir)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=True, undefined=jinja2.ChainableUndefined,
                             trim_blocks=True, lstrip_blocks=True)  # fmt: skip
    env.globals.update(static=assets.url, step_name=lambda n: STEP_NAMES.get(n, n),
                       percent=lambda p: round((p or 0) * 100))  # fmt: skip
    router = APIRouter(include_in_schema=False)

    # --- helpers ---------------------------------------------------------------------------

    def render(request: Request, name: str, http_status: int = 200, **context) -> HTMLResponse:
        principal = getattr(request.state, "principal", None)
        cookie = request.cookies.get(COOKIE)
        context.setdefault("principal", principal)
        context.setdefault("csrf", service.auth.csrf_token(cookie) if cookie else "")
        context.setdefault("path", request.url.path)
        html = env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=http_status, headers=PAGE_HEADERS)

    def problem(request: Request, status: int, message: str, **context) -> Refused:
        return Refused(render(request, "error.html", status, status=status, message=message,
                              **context))  # fmt: skip

    def here(request: Request) -> str:
        query = request.url.query
        return request.url.path + (f"?{query}" if query else "")

    def same_site(request: Request) -> bool:
        """Whether the browser says a request comes from this site (it says so for every
        form post; requests that send neither header are not from a modern browser)."""
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return False
        origin = request.headers.get("origin")
        if origin is None or (origin == "null" and request.method in ("GET", "HEAD")):
            return True
        # the host alone: a TLS proxy in front may not say the scheme the browser used
        return urllib.parse.urlsplit(origin).netloc == request.headers.get("host", "")

    async def caller(request: Request, scope: str = "read") -> Principal:
        """The signed-in caller with ``scope``; else a redirect to the sign-in page (or
        a 403 page: a wrong CSRF token, another site's form, a scope too small)."""
        if request.method not in ("GET", "HEAD") and not same_site(request):
            raise problem(request, 403, "This form came from another site, so it was refused.")
        try:
            principal = await service.auth.identify(request)
        except HTTPException:
            raise problem(request, 403, "This form has expired or came from another site: "
                          "reload the page and try again.") from None  # fmt: skip
        if principal is None:
            target = here(request) if request.method in ("GET", "HEAD") else "/"
            query = "" if target == "/" else "?" + urllib.parse.urlencode({"next": target})
            raise Refused(RedirectResponse("/signin" + query, status_code=303))
        request.state.principal = principal
        if not principal.allows(scope):
            raise problem(request, 403, f"This needs a token with the {scope} scope; "
                          f"yours has {principal.scope}.")  # fmt: skip
        return principal

    def video_of(request: Request, principal: Principal) -> Video:
        try:
            return service.owned(principal, request.path_params["video_id"])
        except HTTPException:
            raise problem(request, 404, "There is no such video.") from None

    async def form(request: Request) -> FormData:
        return await request.form()  # cached on the request (auth read it already)

    def text(data: FormData, name: str, default: str = "") -> str:
        value = data.get(name)
        return value if isinstance(value, str) else default

    def page(path: str, methods: tuple[str, ...] = ("GET", "HEAD")):
        def register(handler: Callable[[Request], Awaitable[Response]]):
            async def endpoint(request: Request) -> Response:
                try:
                    return await handler(request)
                except Refused as refused:
                    return refused.response
                except ReelforgeError as exc:  # what the service refused, as a page
                    status = exc.http_status if 400 <= exc.http_status < 500 else 400
                    return render(request, "error.html", status, status=status,
                                  message=str(exc))  # fmt: skip
                except HTTPException as exc:
                    if exc.status_code >= 500:
                        raise
                    return render(request, "error.html", exc.status_code,
                                  status=exc.status_code, message=str(exc.detail))  # fmt: skip

            endpoint.__name__ = handler.__name__
            router.add_api_route(path, endpoint, methods=list(methods))
            return handler

        return register

    # --- signing in and out ------------------------------------------------------------------

    @page("/signin")
    async def signin_form(request: Request) -> Response:
        target = safe_next(request.query_params.get("next"))
        if await _signed_in(request):
            return RedirectResponse(target, status_code=303)
        return render(request, "signin.html", next=target, error=None, principal=None)

    async def _signed_in(request: Request) -> bool:
        try:
            return await service.auth.identify(request) is not None
        except HTTPException:
            return False

    @page("/signin", methods=("POST",))
    async def signin(request: Request) -> Response:
        if not same_site(request):
            raise problem(request, 403, "This form came from another site, so it was refused.")
        data = await form(request)
        target = safe_next(text(data, "next"))
        token = text(data, "token").strip()
        principal = service.auth.tokens.check(token) if token else None
        if principal is None:
            return render(request, "signin.html", 401, next=target, principal=None,
                          error="That token is not valid (unknown or revoked).")  # fmt: skip
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, service.auth.session_cookie(principal),
                            max_age=SESSION_SECONDS, path="/", httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")  # fmt: skip
        return response

    @page("/signout", methods=("POST",))
    async def signout(request: Request) -> Response:
        """Ends the session; a live one must send its CSRF token from this site."""
        if not same_site(request):
            raise problem(request, 403, "This form came from another site, so it was refused.")
        try:
            await service.auth.identify(request)  # None for a dead session: nothing to guard
        except HTTPException:
            raise problem(request, 403, "This form has expired or came from another site: "
                          "reload the page and try again.") from None  # fmt: skip
        response = RedirectResponse("/signin", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                               secure=request.url.scheme == "https")  # fmt: skip
        return response

    # --- the library -----------------------------------------------------------------------

    @page("/")
    async def library(request: Request) -> Response:
        principal = await caller(request)
        before = request.query_params.get("before") or None
        limit = request.query_params.get("limit", "")
        size = max(1, min(int(limit), 100)) if limit.isdecimal() and len(limit) < 4 else PAGE_SIZE
        owner = None if principal.admin else principal.token_id
        found = await run_in_threadpool(service.videos.list, owner, limit=size + 1,
                                        before=before)  # fmt: skip
        shown, more = found[:size], len(found) > size
        query = "" if size == PAGE_SIZE else f"&limit={size}"
        views = [service.view(request, v) for v in shown]
        return render(request, "library.html", videos=views,
                      next_page=f"/?before={shown[-1].id}{query}" if more else None,
                      first_page=before is not None)  # fmt: skip

    # --- uploading -------------------------------------------------------------------------

    @page("/upload")
    async def upload_page(request: Request) -> Response:
        await caller(request, "upload")
        return render(request, "upload.html", tus=assets.url("vendor/tus.min.js"),
                      error=None)  # fmt: skip

    def publish_options(data: FormData) -> PublishRequest:
        preset = text(data, "preset", "balanced")
        return PublishRequest(preset=preset if preset in ("fast", "balanced", "best")
                              else "balanced", quality=text(data, "quality") == "on")  # fmt: skip

    @page("/upload", methods=("POST",))
    async def upload_plain(request: Request) -> Response:
        """The upload form without scripts: the files in the form body, then published."""
        principal = await caller(request, "upload")
        data = await form(request)
        files = [f for f in data.getlist("file") if isinstance(f, UploadFile) and f.filename]
        if not files:
            return render(request, "upload.html", 400, tus=assets.url("vendor/tus.min.js"),
                          error="Choose a file to upload.")  # fmt: skip
        if empty := [f.filename for f in files if not f.size]:
            return render(request, "upload.html", 400, tus=assets.url("vendor/tus.min.js"),
                          error=f"{empty[0]} is empty.")  # fmt: skip
        made = []
        for f in files:
            meta = {"filename": f.filename or "upload"}
            if f.content_type and f.content_type != "application/octet-stream":
                meta["filetype"] = f.content_type
            try:
                meta = parse_metadata(encode_metadata(meta))
            except ReelforgeError:
                meta = {"filename": "upload"}
            size = f.size if f.size is not None else 0
            upload = await run_in_threadpool(service.uploads.create, principal.token_id, size,
                                             meta)  # fmt: skip
            title = text(data, "title").strip()[:300] or None
            body = VideoRequest(upload=upload.id, title=title if len(files) == 1 else None,
                                publish=publish_options(data),
                                private=text(data, "private") == "on")  # fmt: skip
            try:
                await service.uploads.append(upload, 0, _chunks(f))
                made.append(await run_in_threadpool(service.create_video, principal, body))
            except BaseException:
                await run_in_threadpool(service.uploads.delete, upload)  # nothing left behind
                raise
        target = f"/videos/{made[0].id}" if len(made) == 1 else "/"
        return RedirectResponse(target, status_code=303)

    @page("/upload/story", methods=("POST",))
    async def upload_story(request: Request) -> Response:
        """The story form without scripts: the YAML and the folder's files in the body."""
        principal = await caller(request, "upload")
        data = await form(request)
        story = data.get("story")
        story = story if isinstance(story, UploadFile) and story.filename else None
        files = [f for f in data.getlist("files") if isinstance(f, UploadFile) and f.filename]
        files = story_files(files)
        in_folder = next((f for f in files if f.filename == "story.yaml"), None)
        files = [f for f in files if f is not in_folder]
        story = story or in_folder
        if story is None:
            return render(request, "upload.html", 400, tus=assets.url("vendor/tus.min.js"),
                          error="Choose the story's YAML file, or a folder holding "
                          "story.yaml.")  # fmt: skip
        video = await service.create_story(principal, story, files, {},
                                           text(data, "private") == "on")  # fmt: skip
        return RedirectResponse(f"/videos/{video.id}", status_code=303)

    # --- a video ---------------------------------------------------------------------------

    def job_steps(video: Video) -> list[dict]:
        try:
            job = service.jobs.get(video.job_id) if video.job_id else None
        except ReelforgeError:
            return []
        if job is None:
            return []
        return [
            {
                "name": s.name,
                "status": s.status,
                "stage": s.stage,
                "progress": s.progress,
                "seconds": s.seconds,
            }
            for s in job.current_steps()
        ]

    def retryable(view: dict) -> dict:
        """``view`` with ``retryable``: errored with its input kept (else only a new
        upload helps)."""
        kept = service.videos.source_dir(view["id"]).is_dir()
        return {**view, "retryable": view["status"] == ERRORED and kept}

    def video_context(request: Request, video: Video) -> dict:
        view = retryable(service.view(request, video))
        context: dict[str, Any] = {"video": view, "steps": job_steps(video),
                                   "open": video.status in OPEN, "tracks": None,
                                   "hls_script": "/player/" + HLS_SCRIPT if assets.hls
                                   else None}  # fmt: skip
        master = service.videos.master(video) if video.status == READY else None
        if master is not None and view["playback"]:
            report = _read_json(master.parent / "report.json")
            media = view["playback"]["hls"].rsplit("/", 1)[0]
            fallback = (report.get("files") or {}).get("fallback")
            renditions = [r for r in report.get("renditions", []) if isinstance(r, dict)]
            context["tracks"] = {
                "video": [r for r in renditions if r.get("kind") == "video"],
                "audio": [r for r in renditions if r.get("kind") == "audio"],
                "subtitles": [s for s in report.get("subtitles") or [] if isinstance(s, dict)],
                "fallback": f"{media}/{fallback}" if isinstance(fallback, str) else None,
            }
        return context

    @page("/videos/{video_id}")
    async def video_page(request: Request) -> Response:
        principal = await caller(request)
        video = video_of(request, principal)
        context = await run_in_threadpool(video_context, request, video)
        return render(request, "video.html", can_change=principal.allows("upload"), **context)

    @page("/videos/{video_id}/steps")
    async def video_steps(request: Request) -> Response:
        """The steps list alone, for the video page's script to swap in."""
        principal = await caller(request)
        video = video_of(request, principal)
        return render(
            request,
            "steps.html",
            steps=job_steps(video),
            video={"status": video.status, "step": video.step, "progress": video.progress},
        )

    @page("/videos/{video_id}/report")
    async def report_page(request: Request) -> Response:
        principal = await caller(request)
        video = video_of(request, principal)
        master = service.videos.master(video)
        if master is None:
            raise problem(request, 409, f"This video has no report yet (it is {video.status}).",
                          video=service.view(request, video))  # fmt: skip

        def build() -> dict:
            report = _read_json(master.parent / "report.json")
            return {
                "publish": publish_charts(master.parent, report),
                "make": make_readings(service.videos.stream_dir(video), cache),
            }

        built = await run_in_threadpool(build)
        return render(request, "report.html", video=service.view(request, video), **built)

    @page("/videos/{video_id}/delete", methods=("POST",))
    async def delete_video(request: Request) -> Response:
        principal = await caller(request, "upload")
        video = video_of(request, principal)
        data = await form(request)
        if text(data, "confirmed") != "yes":
            return render(request, "confirm.html", video=service.view(request, video))
        await run_in_threadpool(service.delete, video)
        return RedirectResponse("/", status_code=303)

    @page("/videos/{video_id}/retry", methods=("POST",))
    async def retry_video(request: Request) -> Response:
        principal = await caller(request, "upload")
        video = video_of(request, principal)
        data = await form(request)
        back = safe_next(text(data, "next"), f"/videos/{video.id}")
        try:
            await run_in_threadpool(service.retry, video)
        except HTTPException as exc:
            raise problem(request, exc.status_code, str(exc.detail), back=back) from None
        return RedirectResponse(back, status_code=303)

    # --- jobs ------------------------------------------------------------------------------

    @page("/jobs")
    async def jobs_page(request: Request) -> Response:
        await caller(request, "admin")

        def gather() -> dict:
            errored = service.videos.list(None, limit=100, status=ERRORED)
            jobs = [j for status in ("failed", "interrupted", "cancelled")
                    for j in service.jobs.list(status, 50)]  # fmt: skip
            jobs.sort(key=lambda j: j.updated_at, reverse=True)
            found = {j.subject: service.videos.find(j.subject) for j in jobs if j.subject}
            videos = {k: retryable(service.view(request, v)) for k, v in found.items() if v}
            return {
                "errored": [retryable(service.view(request, v)) for v in errored],
                "jobs": [{"job": j, "video": videos.get(j.subject)} for j in jobs],
            }

        return render(request, "jobs.html", **await run_in_threadpool(gather))

    # --- assets ----------------------------------------------------------------------------

    @router.get("/static/vendor/{name}")
    def vendor_asset(request: Request, name: str) -> Response:
        return assets.response(request, f"vendor/{name}")

    @router.get("/static/{name}")
    def static_asset(request: Request, name: str) -> Response:
        return assets.response(request, name)

    return router


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(1 << 20):
        yield chunk


def story_files(files: list[UploadFile]) -> list[UploadFile]:
    """A picked folder's files named relative to the folder (its own name taken off the
    front when every file carries it) and without hidden files (``.DS_Store``)."""
    names = [(f.filename or "").replace("\\", "/") for f in files]
    tops = {n.split("/", 1)[0] for n in names}
    strip = len(tops) == 1 and all("/" in n for n in names)
    kept = []
    for f, name in zip(files, names, strict=True):
        rel = name.split("/", 1)[1] if strip else name
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        f.filename = rel
        kept.append(f)
    return kept
