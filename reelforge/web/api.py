"""The JSON API: videos and stories, their events, reports and jobs.

Contract (every route needs a token, see :mod:`reelforge.web.auth`; ids are opaque):

- ``POST /api/videos {"upload", "title", "publish", "private"}`` → 201, the video
  (``status: waiting``); the upload (a tus URL or id) becomes the video's source.
- ``POST /api/stories`` (multipart: ``story`` the YAML, ``files`` the files it names, each
  sent with its relative path as file name, ``uploads`` a JSON object of relative path →
  upload for big files, ``private``) → 201, the same shape; a bad story is a 400 naming
  ``story.yaml:line:column``.
- ``GET /api/videos/{id}`` → ``{"id", "kind", "title", "status", "progress", "step",
  "playback": {"hls", "dash", "poster", "page"}, "report", "error"}``; playback URLs of a
  private video carry a signed token minted for this caller.
- ``GET /api/videos?limit=&before=&status=``: the caller's (an admin's: everyone's), newest
  first, with ``next`` for the following page. ``DELETE /api/videos/{id}``: stops its job
  and removes its files.
- ``GET /api/videos/{id}/events``: Server-Sent Events (``event: status``) on every change
  until ``ready`` or ``errored``.
- ``GET /api/videos/{id}/report``: the publish report (and the story's ``make.json``).
- ``POST /api/videos/{id}/retry``: an errored video's job again, from its failed step.
- ``GET /api/jobs?status=`` (admin): jobs as the job store has them.
Another owner's video is a 404, as an unknown one is. Errors are
``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from reelforge.delivery.signing import make_token
from reelforge.errors import InputError, ReelforgeError
from reelforge.pipeline.jobs import ACTIVE, RETRYABLE, JobStore
from reelforge.web import stories
from reelforge.web.tokens import Principal
from reelforge.web.videos import (
    ERRORED,
    OPEN,
    READY,
    WAITING,
    PublishRequest,
    Video,
    VideoStore,
    new_video_id,
)

EVENT_POLL_S = 0.25
HEARTBEAT_S = 15.0


class VideoRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    upload: str = Field(min_length=1, max_length=2048)
    title: str | None = Field(default=None, max_length=300)
    publish: PublishRequest = Field(default_factory=PublishRequest)
    private: bool = True


def error_body(code: str, message: str, field: str | None = None) -> dict:
    """The body of every API error: ``field`` names the request field it concerns (a JSON
    path such as ``publish.codecs``, or ``upload``, ``story``, ``files``), null if none."""
    return {"error": {"code": code, "message": message, "field": field}}


def error_field(exc: ReelforgeError) -> str | None:
    """The request field a library error concerns: its option (``--chunk-seconds``:
    ``chunk_seconds``), uploads by their codes, else None."""
    if exc.code.startswith("upload-"):
        return "upload"
    if exc.option:
        return exc.option.lstrip("-").replace("-", "_")
    return None


class Service:
    """What the routes share: stores, the pool, settings (see :mod:`reelforge.web.app`)."""

    def __init__(self, *, settings, videos: VideoStore, jobs: JobStore, pool, uploads,
                 auth, webhooks) -> None:  # fmt: skip
        self.settings, self.videos, self.jobs, self.pool = settings, videos, jobs, pool
        self.uploads, self.auth, self.webhooks = uploads, auth, webhooks

    # --- views --------------------------------------------------------------------------

    def playback(self, request: Request, video: Video) -> dict | None:
        master = self.videos.master(video)
        if master is None:
            return None
        base = str(request.base_url).rstrip("/")
        folder = self.videos.stream_dir(video)
        rel = master.parent.relative_to(self.settings.library).as_posix()
        if video.private:
            hour = 3600
            expires = (int(time.time()) // hour + 1) * hour + self.settings.playback_ttl_s
            token = make_token(self.settings.playback_key, video.stream_path, expires)
            media, page = f"{base}/p/{token}/{rel}", f"{base}/p/{token}/watch/{rel}"
        else:
            media, page = f"{base}/media/{rel}", f"{base}/watch/{rel}"
        files = _report(master.parent).get("files", {})
        poster = (files.get("poster") or {}).get("jpeg")
        view = {"hls": f"{media}/master.m3u8", "page": page,
                "dash": f"{media}/manifest.mpd" if (master.parent / "manifest.mpd").is_file()
                else None,
                "poster": f"{media}/{poster}" if poster else None}  # fmt: skip
        del folder
        return view

    def view(self, request: Request, video: Video) -> dict[str, Any]:
        base = str(request.base_url).rstrip("/")
        out: dict[str, Any] = {
            "id": video.id, "kind": video.kind, "title": video.title, "status": video.status,
            "progress": round(video.progress, 4), "step": video.step, "private": video.private,
            "created_at": video.created_at, "ready_at": video.ready_at,
            "playback": self.playback(request, video) if video.status == READY else None,
            "report": f"{base}/api/videos/{video.id}/report" if video.status == READY else None,
            "page": f"{base}/videos/{video.id}",
            "error": ({"code": video.error_code, "message": video.error_message}
                      if video.status == ERRORED else None),
        }  # fmt: skip
        return out

    def owned(self, principal: Principal, video_id: str) -> Video:
        """The caller's video (an admin's: anyone's), else 404."""
        video = self.videos.find(video_id) if len(video_id) <= 40 else None
        if video is None or (video.owner != principal.token_id and not principal.admin):
            raise HTTPException(404, f"no video {video_id!r}")
        return video

    def notify(self, video: Video, event: str) -> None:
        """Pool callback: webhooks for ``video.ready`` / ``video.errored``."""
        owner = self.auth.tokens.get(video.owner)
        url = (owner.webhook_url if owner is not None else None) or self.settings.webhook_url
        if url:
            data = {"id": video.id, "title": video.title, "status": video.status}
            if video.status == ERRORED:
                data["error"] = {"code": video.error_code, "message": video.error_message}
            self.webhooks.enqueue(url, video.id, event, data)

    # --- changing -----------------------------------------------------------------------

    def retry(self, video: Video) -> Video:
        """``video``'s job queued again from its failed step; 409 unless the video is
        errored, its job retryable and its input kept. A job whose process died without
        recording it (still marked running) is recovered to ``interrupted`` first."""
        job = self.jobs.get(video.job_id) if video.job_id else None
        if job is not None and video.status == ERRORED and job.status in ACTIVE:
            self.jobs.recover()
            job = self.jobs.get(job.id)
        if video.status != ERRORED or job is None or job.status not in RETRYABLE:
            raise HTTPException(409, f"video {video.id} is {video.status}; only an errored "
                                "one can be retried")  # fmt: skip
        if not self.videos.source_dir(video.id).is_dir():
            raise HTTPException(409, f"video {video.id}'s input was refused; upload it again")
        self.videos.update(video.id, status=WAITING, error_code=None, error_message=None)
        self.pool.submit(video.id)
        return self.videos.get(video.id)

    def delete(self, video: Video) -> None:
        """Stop ``video``'s job and remove it with its files."""
        self.pool.cancel(video)
        self.videos.delete(video)

    # --- creating -----------------------------------------------------------------------

    def _queue(self, *, video_id: str, principal: Principal, kind: str, title: str,
               argv: list[str], cwd: Path, private: bool, options: dict) -> Video:  # fmt: skip
        output = self.settings.library / ("private" if private else "public") / video_id
        job_id = self.jobs.create(kind, {"argv": [*argv, "-o", str(output)], "cwd": str(cwd)},
                                  str(output), subject=video_id)  # fmt: skip
        video = self.videos.create(video_id=video_id, owner=principal.token_id, kind=kind
                                   .replace("publish", "video").replace("make", "story"),
                                   title=title, job_id=job_id, private=private,
                                   options=options)  # fmt: skip
        self.pool.submit(video.id)
        return video

    def create_video(self, principal: Principal, body: VideoRequest) -> Video:
        path, upload = self.uploads.complete_file(body.upload, principal.token_id)
        video_id = new_video_id()
        name = Path(upload.metadata.get("filename") or "upload").name or "upload"
        folder = self.videos.source_dir(video_id)
        folder.mkdir(parents=True)
        source = folder / f"source{Path(name).suffix[:10]}"
        shutil.move(str(path), source)  # the upload becomes the video's own
        self.uploads.delete(upload)
        title = body.title or Path(name).stem
        options = {"publish": body.publish.model_dump()}
        return self._queue(video_id=video_id, principal=principal, kind="publish",
                           title=title, argv=[source.name, *body.publish.argv()], cwd=folder,
                           private=body.private, options=options)  # fmt: skip

    async def create_story(self, principal: Principal, story: UploadFile,
                           files: list[UploadFile], uploads: dict[str, str],
                           private: bool) -> Video:  # fmt: skip
        if len(files) + len(uploads) > stories.MAX_FILES:
            raise InputError(f"a story may bring at most {stories.MAX_FILES} files", option="files")
        video_id = new_video_id()
        folder = self.videos.source_dir(video_id)
        folder.mkdir(parents=True)
        try:
            await _save(story, folder / stories.STORY_NAME)
            for f in files:
                await _save(f, stories.place(folder, f.filename or ""))
            for name, ref in uploads.items():
                target = stories.place(folder, name)
                path, upload = self.uploads.complete_file(ref, principal.token_id)
                shutil.move(str(path), target)
                self.uploads.delete(upload)
            story_obj = await anyio.to_thread.run_sync(stories.check_story, folder)
            planned = stories.planned_steps(story_obj)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return self._queue(video_id=video_id, principal=principal, kind="make",
                           title=story_obj.title, argv=[stories.STORY_NAME], cwd=folder,
                           private=private, options={"planned_steps": planned})  # fmt: skip


async def _save(upload: UploadFile, target: Path) -> None:
    with target.open("wb") as out:
        while chunk := await upload.read(1 << 20):
            out.write(chunk)


def _without_server_paths(value: Any, roots: tuple[Path, ...], data: Path) -> Any:
    """``value`` with every path into the service's data folder made relative to the
    video's own folders (``source.mp4``, ``.``): a report tells a client nothing of the
    server's file system."""
    if isinstance(value, dict):
        return {k: _without_server_paths(v, roots, data) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_server_paths(v, roots, data) for v in value]
    if isinstance(value, str) and value.startswith(str(data)):
        for root in roots:
            if value == str(root) or value.startswith(f"{root}/"):
                return Path(value).relative_to(root).as_posix()
        return Path(value).name
    return value


def _report(folder: Path) -> dict:
    try:
        return json.loads((folder / "report.json").read_text())
    except (OSError, ValueError):
        return {}


def api_router(service: Service) -> APIRouter:
    """The ``/api`` routes over ``service``."""
    router = APIRouter(prefix="/api")
    read = Depends(service.auth.require("read"))
    upload = Depends(service.auth.require("upload"))
    admin = Depends(service.auth.require("admin"))
    # (dependencies as defaults: annotations are strings here and cannot see these names)
    # Reads are coroutines: their database work is a fraction of a millisecond, less than a
    # hop to the thread pool costs; writes that move files stay in the pool.

    @router.get("/me")
    async def me(principal: Principal = read) -> dict:
        """The calling token: its name and scope."""
        return {"id": principal.token_id, "name": principal.name, "scope": principal.scope}

    @router.post("/videos", status_code=201)
    def create_video(request: Request, body: VideoRequest,
                     principal: Principal = upload) -> dict:  # fmt: skip
        """Prepare an upload ahead of time: publish it (posters and thumbnails included)."""
        return service.view(request, service.create_video(principal, body))

    @router.post("/stories", status_code=201)
    async def create_story(request: Request, story: Annotated[UploadFile, File()],
                           files: Annotated[list[UploadFile] | None, File()] = None,
                           uploads: Annotated[str | None, Form()] = None,
                           private: Annotated[bool, Form()] = True,
                           principal: Principal = upload) -> dict:  # fmt: skip
        """Make a story (its YAML and the files it names) into a published stream."""
        try:
            refs = json.loads(uploads) if uploads else {}
        except ValueError:
            raise InputError(
                "uploads must be a JSON object of file name -> upload", option="uploads"
            ) from None
        if not isinstance(refs, dict) or not all(isinstance(v, str) for v in refs.values()):
            raise InputError(
                "uploads must be a JSON object of file name -> upload", option="uploads"
            )
        video = await service.create_story(principal, story, files or [], refs, private)
        return service.view(request, video)

    @router.get("/videos")
    async def list_videos(request: Request, limit: int = 20, before: str | None = None,
                    status: str | None = None, principal: Principal = read) -> dict:  # fmt: skip
        """The caller's videos, newest first; ``next``: the URL of the next page."""
        limit = max(1, min(limit, 100))
        owner = None if principal.admin else principal.token_id
        found = service.videos.list(owner, limit=limit + 1, before=before, status=status)
        page, more = found[:limit], len(found) > limit
        base = str(request.base_url).rstrip("/")
        nxt = f"{base}/api/videos?limit={limit}&before={page[-1].id}" if more else None
        return {"data": [service.view(request, v) for v in page], "next": nxt}

    @router.get("/videos/{video_id}")
    async def get_video(request: Request, video_id: str,
                  principal: Principal = read) -> dict:  # fmt: skip
        return service.view(request, service.owned(principal, video_id))

    @router.delete("/videos/{video_id}", status_code=204)
    def delete_video(video_id: str, principal: Principal = upload) -> Response:
        service.delete(service.owned(principal, video_id))
        return Response(status_code=204)

    @router.post("/videos/{video_id}/retry")
    def retry_video(request: Request, video_id: str,
                    principal: Principal = upload) -> dict:  # fmt: skip
        return service.view(request, service.retry(service.owned(principal, video_id)))

    @router.get("/videos/{video_id}/report")
    async def video_report(video_id: str, principal: Principal = read) -> dict:
        video = service.owned(principal, video_id)
        master = service.videos.master(video)
        if master is None:
            raise HTTPException(409, f"video {video.id} has no report yet ({video.status})")
        made = service.videos.stream_dir(video) / "make.json"
        out = {"publish": _report(master.parent)}
        if made.is_file():
            out["make"] = json.loads(made.read_text())
        roots = (service.videos.source_dir(video.id), service.videos.stream_dir(video))
        return _without_server_paths(out, roots, service.settings.data)

    @router.get("/videos/{video_id}/events")
    async def video_events(request: Request, video_id: str,
                           principal: Principal = read) -> StreamingResponse:  # fmt: skip
        """Server-Sent Events: ``status`` on every change, until ``ready`` or ``errored``."""
        service.owned(principal, video_id)

        async def events():
            last, beat = None, time.monotonic()
            while True:
                video = await anyio.to_thread.run_sync(service.videos.find, video_id)
                if video is None:
                    yield "event: deleted\ndata: {}\n\n"
                    return
                if video.snapshot() != last:
                    last = video.snapshot()
                    data = await anyio.to_thread.run_sync(service.view, request, video)
                    yield f"event: status\ndata: {json.dumps(data)}\n\n"
                    beat = time.monotonic()
                    if video.status not in OPEN:
                        return
                elif time.monotonic() - beat > HEARTBEAT_S:
                    yield ": keep-alive\n\n"
                    beat = time.monotonic()
                if await request.is_disconnected():
                    return
                await asyncio.sleep(EVENT_POLL_S)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store",
                                          "X-Accel-Buffering": "no"})  # fmt: skip

    @router.get("/jobs")
    def list_jobs(status: str | None = None, limit: int = 50,
                  principal: Principal = admin) -> dict:  # fmt: skip
        """Jobs as the job store records them (failed ones with their error)."""
        jobs = service.jobs.list(status, max(1, min(limit, 200)))
        return {"data": [json.loads(j.model_dump_json(exclude={"args"})) for j in jobs]}

    return router
