"""``/media/`` served from S3-compatible storage: streamed through, or redirected.

Contract: :class:`S3Media` answers GET and HEAD for ``/media/<path>`` under an
``s3://BUCKET/PREFIX`` root. In ``stream`` mode the object is read from S3 and passed on:
one byte range (206, 416 when unsatisfiable), ``If-None-Match``/``If-Modified-Since``
(304, decided by S3), the object's ETag, Last-Modified and Content-Type, and
Cache-Control by asset class. In ``redirect`` mode the answer is a 302 to a presigned URL
valid for ``PRESIGN_SECONDS`` (the redirect itself cached privately for less than that),
so bytes flow from the storage, not through the origin. Paths with ``..``, backslashes,
NULs, empty segments or dot-files are 404 before any request to S3.
"""

from __future__ import annotations

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from reelforge.delivery.cache import IGNORE, REFUSE, cache_control, range_action
from reelforge.storage import S3Location, client

PRESIGN_SECONDS = 300
CHUNK = 256 * 1024
PASSED_HEADERS = {"ContentType": "content-type", "ETag": "etag", "ContentRange": "content-range",
                  "ContentLength": "content-length"}  # fmt: skip


def safe_key_path(path: str) -> str:
    parts = path.split("/")
    if (not path or "\x00" in path or "\\" in path
            or any(p in ("", ".", "..") or p.startswith(".") for p in parts)):  # fmt: skip
        raise HTTPException(404)
    return path


class S3Media:
    def __init__(self, where: S3Location, *, manifest_max_age: int, mode: str = "stream") -> None:
        self.where, self.manifest_max_age, self.mode = where, manifest_max_age, mode
        self.s3 = client()

    async def handle(self, request: Request) -> Response:
        path = safe_key_path(request.path_params["path"])
        key = self.where.key(path)
        if self.mode == "redirect":
            params = {"Bucket": self.where.bucket, "Key": key}
            url = await run_in_threadpool(self.s3.generate_presigned_url, "get_object",
                                          Params=params, ExpiresIn=PRESIGN_SECONDS)  # fmt: skip
            return RedirectResponse(url, status_code=302,
                                    headers={"Cache-Control": "private, max-age=60"})  # fmt: skip
        params = {"Bucket": self.where.bucket, "Key": key}
        wanted = request.headers.get("range")
        action = range_action(wanted) if wanted else IGNORE
        if action == REFUSE:
            raise HTTPException(416)
        if action != IGNORE:
            params["Range"] = wanted
        if etag := request.headers.get("if-none-match"):
            params["IfNoneMatch"] = etag
        elif since := request.headers.get("if-modified-since"):
            params["IfModifiedSince"] = since
        head = request.method == "HEAD"
        try:
            obj = await run_in_threadpool(self.s3.head_object if head else self.s3.get_object,
                                          **params)  # fmt: skip
        except Exception as exc:  # botocore ClientError: map S3's answer to ours
            code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
            status = {"304": 304, "NotModified": 304, "404": 404, "NoSuchKey": 404,
                      "InvalidRange": 416, "416": 416, "412": 412}.get(code)  # fmt: skip
            if status is None:
                raise HTTPException(502, "storage error") from None
            if status == 304:
                return Response(status_code=304, headers={
                    "Cache-Control": cache_control(path, self.manifest_max_age)})  # fmt: skip
            raise HTTPException(status) from None
        headers = {h: str(obj[k]) for k, h in PASSED_HEADERS.items() if obj.get(k) is not None}
        if obj.get("LastModified") is not None:
            headers["last-modified"] = obj["LastModified"].strftime("%a, %d %b %Y %H:%M:%S GMT")
        headers["accept-ranges"] = "bytes"
        headers["cache-control"] = cache_control(path, self.manifest_max_age)
        status = 206 if "content-range" in headers else 200
        if head:
            return Response(status_code=status, headers=headers)
        body = obj["Body"]

        def chunks():
            try:
                yield from body.iter_chunks(CHUNK)
            finally:
                body.close()

        return StreamingResponse(iterate_in_threadpool(chunks()), status_code=status,
                                 headers=headers)  # fmt: skip
