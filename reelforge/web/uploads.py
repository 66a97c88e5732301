"""Resumable uploads kept on disk: the storage half of the tus 1.0 endpoint.

Each upload is two files in the store's folder: ``ID.data`` (the bytes received so far,
written at their offsets) and ``ID.json`` (:class:`Upload`: owner, length, committed offset,
metadata, created, expires), replaced atomically. An id is 22 random URL-safe characters and
is checked against :data:`ID_PATTERN` before any path is built from it.

Contract:

- :meth:`UploadStore.get` answers ``None`` for an unknown id, a malformed one, one owned by
  someone else (so ids never leak) and, unless asked, an expired one.
- :meth:`UploadStore.append` is the only writer: one at a time per upload (an ``flock`` on the
  data file, across threads and processes; a second one gets :class:`UploadError` 423),
  writes at the committed offset only (409 otherwise), never past the declared length (413)
  and commits whatever arrived, even when the client drops the connection, so a client
  resumes from the stored offset. A process killed mid-write loses that request's bytes,
  never the committed ones.
- An incomplete upload expires ``expiry_seconds`` after its creation or last write;
  :meth:`UploadStore.sweep` (also run by each creation) deletes expired incomplete uploads.
  Complete uploads stay until deleted.
- Refusals are :class:`UploadError` (an :class:`~reelforge.errors.InputError`) carrying the
  HTTP status the tus routes answer with; :meth:`UploadStore.complete_file` raises a plain
  ``InputError`` with code ``upload-reference``, ``upload-not-found`` or ``upload-incomplete``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import time
import unicodedata
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from reelforge.errors import InputError
from reelforge.fsutil import write_text_atomic

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{22}")
"""What an upload id looks like (``secrets.token_urlsafe(16)``), matched whole."""

_REFERENCE_PATH = re.compile(r"(?:.*/)?api/uploads/([^/]*)/?")
_METADATA_KEY = re.compile(r"[!-+\--~]+")  # printable ASCII without space and comma
_FILETYPE = re.compile(r"[A-Za-z0-9][\w.+-]{0,62}/[\w.+-]{1,63}", re.ASCII)
_MAX_METADATA_HEADER = 8192
_FLUSH_BYTES = 1 << 20  # buffer this much of a request body before a write
_STALE_SECONDS = 3600.0  # leftover temporaries older than this are swept


class UploadError(InputError):
    """A request the store refuses; ``http_status`` is what the tus route answers."""

    def __init__(self, message: str, *, code: str, http_status: int) -> None:
        super().__init__(message, code=code)
        self.http_status = http_status


@dataclass(frozen=True)
class Upload:
    """One upload's committed state, as its info file holds it (times in Unix seconds)."""

    id: str
    owner: str
    length: int
    offset: int
    metadata: dict[str, str] = field(default_factory=dict)
    created: float = 0.0
    expires: float = 0.0

    @property
    def complete(self) -> bool:
        """Every declared byte has been received."""
        return self.offset >= self.length

    def expired(self, now: float | None = None) -> bool:
        """An incomplete upload past its expiry time (complete ones never expire)."""
        return not self.complete and (time.time() if now is None else now) >= self.expires

    @property
    def filename(self) -> str | None:
        """The client's file name (base name only, sanitised), if it sent one."""
        return self.metadata.get("filename")

    @property
    def filetype(self) -> str | None:
        """The client's media type (``video/mp4``), if it sent one."""
        return self.metadata.get("filetype")


def parse_metadata(header: str) -> dict[str, str]:
    """Parse ``Upload-Metadata`` (``key base64value`` pairs, comma-separated; a key may have
    no value) and keep ``filename`` (base name, no control characters) and ``filetype``
    (lower case); other keys are checked, then dropped.

    Raises :class:`UploadError` (400) for a malformed header: an empty pair, a bad key, a
    duplicate key, invalid base64, a non-UTF-8 file name or an invalid media type.
    """
    if len(header) > _MAX_METADATA_HEADER:
        raise _bad_metadata("is too long")
    pairs: dict[str, bytes] = {}
    if header.strip():
        for pair in header.split(","):
            parts = pair.strip().split(" ")
            if len(parts) > 2 or not _METADATA_KEY.fullmatch(parts[0]):
                raise _bad_metadata("has a malformed pair")
            if parts[0] in pairs:
                raise _bad_metadata(f"repeats the key {parts[0]!r}")
            try:
                pairs[parts[0]] = base64.b64decode(parts[1], validate=True) if parts[1:] else b""
            except (binascii.Error, ValueError):
                raise _bad_metadata(f"has invalid base64 for {parts[0]!r}") from None
    metadata: dict[str, str] = {}
    if raw := pairs.get("filename"):
        try:
            name = _safe_filename(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise _bad_metadata("has a file name that is not UTF-8") from None
        if name:
            metadata["filename"] = name
    if raw := pairs.get("filetype"):
        filetype = raw.decode("ascii", "replace")
        if not _FILETYPE.fullmatch(filetype):
            raise _bad_metadata("has an invalid filetype")
        metadata["filetype"] = filetype.lower()
    return metadata


def encode_metadata(metadata: dict[str, str]) -> str:
    """The ``Upload-Metadata`` header value for ``metadata`` (the inverse of parsing)."""
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode('ascii')}"
        for key, value in metadata.items()
    )


def _bad_metadata(why: str) -> UploadError:
    return UploadError(f"Upload-Metadata {why}", code="upload-metadata", http_status=400)


def _safe_filename(name: str) -> str:
    """The base name of ``name`` without control or format characters, at most 255 long."""
    base = re.split(r"[/\\]", name)[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch) not in ("Cc", "Cf"))
    base = base.strip()[:255]
    return "" if base in ("", ".", "..") else base


class UploadStore:
    """Uploads under ``folder``: at most ``max_size`` bytes each, incomplete ones expiring
    ``expiry_seconds`` after their last write. Safe to share between threads and between
    processes using the same folder."""

    def __init__(self, folder: Path, *, max_size: int, expiry_seconds: float) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_size = max_size
        self.expiry_seconds = expiry_seconds

    # -- reading ---------------------------------------------------------------------------

    def get(self, upload_id: str, owner: str, *, include_expired: bool = False) -> Upload | None:
        """The upload ``upload_id`` if ``owner`` owns it; ``None`` when it is unknown,
        malformed, someone else's or (unless ``include_expired``) expired."""
        upload = self._load(upload_id)
        if upload is None or upload.owner != owner:
            return None
        if upload.expired() and not include_expired:
            return None
        return upload

    def data_path(self, upload: Upload) -> Path:
        """The file holding ``upload``'s bytes (complete once ``upload.complete``)."""
        return self._path(upload.id, ".data")

    def complete_file(self, reference: str, owner: str) -> tuple[Path, Upload]:
        """The data file and state of a finished upload named by ``reference``: its URL
        (``https://host/api/uploads/ID``), its path (``/api/uploads/ID``) or its bare id.

        Raises ``InputError`` with code ``upload-reference`` (not an upload reference),
        ``upload-not-found`` (unknown, expired or someone else's) or ``upload-incomplete``.
        """
        upload_id = reference.strip()
        if "/" in upload_id:
            match = _REFERENCE_PATH.fullmatch(urlsplit(upload_id).path)
            upload_id = match.group(1) if match else ""
        if not ID_PATTERN.fullmatch(upload_id):
            raise InputError(
                f"{reference[:200]!r} is not an upload URL or id", code="upload-reference"
            )
        upload = self.get(upload_id, owner)
        if upload is None:
            raise InputError(f"upload {upload_id} not found", code="upload-not-found")
        if not upload.complete:
            raise InputError(
                f"upload {upload_id} is incomplete ({upload.offset} of {upload.length} bytes)",
                code="upload-incomplete",
            )
        return self.data_path(upload), upload

    # -- writing ---------------------------------------------------------------------------

    def create(self, owner: str, length: int, metadata: dict[str, str]) -> Upload:
        """A new empty upload of ``length`` bytes (expired ones are swept first).

        Raises :class:`UploadError` 413 when ``length`` is over ``max_size`` (or negative:
        400), 507 when it would not fit in the free disk space left after what the
        incomplete uploads still expect.
        """
        if length < 0:
            raise UploadError("Upload-Length is negative", code="upload-length", http_status=400)
        if length > self.max_size:
            raise UploadError(
                f"Upload-Length {length} is over the limit of {self.max_size} bytes",
                code="upload-too-large",
                http_status=413,
            )
        _, expected = self._sweep(time.time())
        if length + expected > shutil.disk_usage(self.folder).free:
            raise UploadError(
                f"not enough disk space for {length} bytes", code="upload-disk-full",
                http_status=507,
            )  # fmt: skip
        now = time.time()
        upload = Upload(
            id=secrets.token_urlsafe(16),
            owner=owner,
            length=length,
            offset=0,
            metadata=dict(metadata),
            created=now,
            expires=now + self.expiry_seconds,
        )
        fd = os.open(self.data_path(upload), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        self._save(upload)
        return upload

    async def append(self, upload: Upload, offset: int, chunks: AsyncIterator[bytes]) -> int:
        """Write ``chunks`` at ``offset`` and return the new committed offset.

        Raises :class:`UploadError`: 404 (gone), 410 (expired), 423 (another write is
        under way), 409 (``offset`` is not the committed offset), 413 (the body goes past
        the length: the bytes up to the length are kept), 507 (the disk filled up). Whatever
        arrived is committed before any exception (a dropped connection's too) leaves here.
        """
        with self._writer(upload.id) as fd:
            current = self._load(upload.id)
            if current is None or current.owner != upload.owner:
                raise _not_found()
            if current.expired():
                raise UploadError("upload expired", code="upload-expired", http_status=410)
            if offset != current.offset:
                raise UploadError(
                    f"Upload-Offset {offset} is not the upload's offset {current.offset}",
                    code="upload-offset",
                    http_status=409,
                )
            os.ftruncate(fd, offset)  # drop bytes a killed writer left uncommitted
            position, size = offset, 0
            pending: list[bytes] = []
            try:
                async for chunk in chunks:
                    room = current.length - position - size
                    if len(chunk) > room:
                        pending.append(chunk[:room])
                        raise UploadError(
                            f"the body goes past the upload's length {current.length}",
                            code="upload-too-large",
                            http_status=413,
                        )
                    pending.append(chunk)
                    size += len(chunk)
                    if size >= _FLUSH_BYTES:
                        data, pending, size = b"".join(pending), [], 0
                        position = await asyncio.to_thread(_pwrite_all, fd, position, data)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                raise UploadError(
                    "the disk is full", code="upload-disk-full", http_status=507
                ) from None
            finally:
                if pending:
                    with contextlib.suppress(OSError):
                        position = _pwrite_all(fd, position, b"".join(pending))
                self._save(
                    dataclasses.replace(
                        current, offset=position, expires=time.time() + self.expiry_seconds
                    )
                )
            return position

    def delete(self, upload: Upload) -> None:
        """Remove ``upload``'s files; :class:`UploadError` 423 while a write is under way."""
        try:
            with self._writer(upload.id):
                self._path(upload.id, ".json").unlink(missing_ok=True)
                self.data_path(upload).unlink(missing_ok=True)
        except UploadError as exc:
            if exc.http_status != 404:
                raise
            self._path(upload.id, ".json").unlink(missing_ok=True)  # its data was lost

    def sweep(self) -> int:
        """Delete expired incomplete uploads (and stale leftovers); how many uploads went."""
        return self._sweep(time.time())[0]

    # -- internals -------------------------------------------------------------------------

    def _sweep(self, now: float) -> tuple[int, int]:
        """(uploads deleted, bytes the remaining incomplete uploads still expect)."""
        deleted = expected = 0
        for entry in self.folder.iterdir():
            stem, _, suffix = entry.name.partition(".")
            if not ID_PATTERN.fullmatch(stem):
                if entry.name.startswith(".") and ".partial-" in entry.name:
                    _remove_if_older(entry, now - _STALE_SECONDS)
                continue
            if suffix == "data" and not self._path(stem, ".json").exists():
                _remove_if_older(entry, now - max(self.expiry_seconds, 60.0))  # a crashed create
            if suffix != "json" or (upload := self._load(stem)) is None or upload.complete:
                continue
            if upload.expired(now):
                with contextlib.suppress(UploadError):
                    self.delete(upload)
                    deleted += 1
                    continue
            expected += upload.length - upload.offset
        return deleted, expected

    def _path(self, upload_id: str, suffix: str) -> Path:
        if not ID_PATTERN.fullmatch(upload_id):  # the one place a path is built from an id
            raise ValueError("malformed upload id")
        return self.folder / f"{upload_id}{suffix}"

    def _load(self, upload_id: str) -> Upload | None:
        if not isinstance(upload_id, str) or not ID_PATTERN.fullmatch(upload_id):
            return None
        try:
            info: Any = json.loads(self._path(upload_id, ".json").read_text("utf-8"))
            upload = Upload(**info)
        except (OSError, ValueError, TypeError):
            return None
        ok = (
            upload.id == upload_id
            and isinstance(upload.owner, str)
            and all(isinstance(v, int) for v in (upload.length, upload.offset))
            and isinstance(upload.metadata, dict)
            and all(isinstance(v, int | float) for v in (upload.created, upload.expires))
        )
        return upload if ok else None

    def _save(self, upload: Upload) -> None:
        text = json.dumps(dataclasses.asdict(upload), ensure_ascii=False)
        write_text_atomic(self._path(upload.id, ".json"), text)

    @contextlib.contextmanager
    def _writer(self, upload_id: str) -> Iterator[int]:
        """An fd of the data file holding its ``flock``; 404 if absent, 423 if held."""
        try:
            fd = os.open(self._path(upload_id, ".data"), os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise _not_found() from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UploadError(
                    "another request is writing this upload", code="upload-busy",
                    http_status=423,
                ) from None  # fmt: skip
            yield fd
        finally:
            os.close(fd)


def _not_found() -> UploadError:
    return UploadError("upload not found", code="upload-not-found", http_status=404)


def _pwrite_all(fd: int, position: int, data: bytes) -> int:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, position)
        position += written
        view = view[written:]
    return position


def _remove_if_older(path: Path, cutoff: float) -> None:
    with contextlib.suppress(OSError):
        if path.stat().st_mtime < cutoff:
            path.unlink()
