"""A watched inbox: every video or image that lands in it is published once, as a job.

Contract: :class:`Watcher` scans the top level of ``inbox`` (dot-files, ``NAME~`` and
partial uploads such as ``.part``/``.crdownload``/``.tmp`` are ignored, and so are
folders). A file is taken once it has been still for ``settle`` seconds (its mtime and
ctime that old: a copy in progress keeps them fresh, a move-in refreshes the ctime). Its
kind is probed: a picture Pillow can open becomes an image set
(``LIBRARY/images/<stem>/``, the ``images`` command's output), anything else is published
as a stream (``LIBRARY/<stem>/``, ``publish``) and fails there if it holds no media. A
stem already used gets ``-2``, ``-3``, ...

Each file is a job in the store (kind ``publish`` or ``images``, its command line as
``args``), found again by its *subject*: the SHA-256 of its content and the library. So a
finished file is never processed again, even after a restart or under a new name; an
interrupted job (its process gone: :meth:`JobStore.recover`) is resumed under its own id;
a file whose job failed is moved to ``INBOX/failed/`` with ``NAME.error.txt`` beside it
(``reelforge jobs retry ID`` moves it back and tries again). The source files are only
read; processed ones stay in the inbox. One watcher per inbox (a lock on
``INBOX/.reelforge-watch.lock``).

How a job's command is run is the caller's: ``process(job)`` (the CLI runs the command
in-process under the job's id).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from reelforge.errors import InputError
from reelforge.pipeline.digest import file_digest
from reelforge.pipeline.jobs import ACTIVE, CANCELLED, DONE, FAILED, INTERRUPTED, QUEUED, Job
from reelforge.pipeline.runner import State, describe, error_code

FAILED_DIR = "failed"
IMAGES_DIR = "images"
LOCK_NAME = ".reelforge-watch.lock"
PARTIAL_SUFFIXES = {".part", ".partial", ".crdownload", ".download", ".tmp", ".filepart",
                    ".upload", ".!ut", ".opdownload"}  # fmt: skip
DEFAULT_SETTLE = 5.0
ERROR_SUFFIX = ".error.txt"

Process = Callable[[Job], None]
Event = Callable[[dict], None]


def ignored(path: Path) -> bool:
    """Dot-files, editor backups and partial uploads."""
    name = path.name
    return name.startswith(".") or name.endswith("~") or path.suffix.lower() in PARTIAL_SUFFIXES


def media_kind(path: Path) -> str:
    """``images`` for a picture Pillow recognises (header only), else ``publish``."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.size  # noqa: B018 (the header parsed)
    except Exception:
        return "publish"
    return "images"


def slug(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.")[:80] or "item"


@dataclass
class Watcher:
    state: State
    inbox: Path
    library: Path
    process: Process
    settle: float = DEFAULT_SETTLE
    publish_args: list[str] = field(default_factory=list)
    image_args: list[str] = field(default_factory=list)
    on_event: Event = field(default=lambda event: None)
    _told: set[tuple[str, str]] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        self.inbox = Path(os.path.realpath(self.inbox))
        self.library = Path(os.path.realpath(self.library))
        if not self.inbox.is_dir():
            raise InputError("is not a folder to watch", path=self.inbox)
        if self.library == self.inbox or self.library in self.inbox.parents:
            raise InputError(f"holds the inbox {self.inbox}; choose a library beside it",
                             path=self.library)  # fmt: skip
        self._tag = hashlib.sha256(str(self.library).encode()).hexdigest()[:12]

    # --- the loop ----------------------------------------------------------------------

    def run(self, *, once: bool = False, interval: float = 2.0,
            stopped: Callable[[], bool] = lambda: False) -> None:  # fmt: skip
        """Scan every ``interval`` seconds; with ``once``, until nothing is left to settle."""
        with self._locked():
            self.state.store.recover()
            while not stopped():
                pending = self.scan()
                if once and pending == 0:
                    return
                time.sleep(min(interval, self.settle / 2) if pending else interval)

    def scan(self) -> int:
        """Handle every settled file once; returns how many are still settling."""
        pending = 0
        now = time.time()
        for path in sorted(self.inbox.iterdir()):
            if ignored(path):
                continue
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if not path.is_file():
                continue
            if now - max(st.st_mtime, st.st_ctime) < self.settle:
                pending += 1
                continue
            self.handle(path)
        return pending

    # --- one file ----------------------------------------------------------------------

    def subject(self, digest: str) -> str:
        return f"{digest}@{self._tag}"

    def handle(self, path: Path) -> None:
        """Process ``path`` unless its content was done already (see the module docstring)."""
        try:
            digest = file_digest(path, self.state.digests)
        except (InputError, OSError):
            return  # gone (moved or deleted) since the scan
        jobs = self.state.store.list(subject=self.subject(digest), limit=20)
        by_status = {j.status: j for j in reversed(jobs)}  # the newest of each status
        if DONE in by_status:
            self._tell_once(path, digest, "skipped", by_status[DONE],
                            reason="already published (same content)")  # fmt: skip
            return
        if any(j.status in ACTIVE for j in jobs):
            return  # another live process runs it (recover() cleared the dead ones)
        if INTERRUPTED in by_status or QUEUED in by_status:
            job = by_status.get(INTERRUPTED) or by_status[QUEUED]
            self._run(path, job, "resumed")
            return
        if FAILED in by_status and by_status[FAILED].error_code != "cancelled":
            self._run(path, by_status[FAILED], "retried")  # put back in the inbox: again
            return
        if CANCELLED in by_status:
            self._fail(path, by_status[CANCELLED], "cancelled")
            return
        self._run(path, self._create(path, digest), "started")

    def retry(self, job: Job) -> None:
        """``jobs retry`` of a watched file: move it back from ``failed/`` and run it."""
        info = job.args["watch"]
        path = Path(info["inbox"]) / info["name"]
        if not path.exists():
            for candidate in self._failed_names(path, job.id):
                if candidate.exists():
                    candidate.rename(path)
                    with contextlib.suppress(FileNotFoundError):
                        candidate.with_name(candidate.name + ERROR_SUFFIX).unlink()
                    break
            else:
                raise InputError(f"job {job.id}: its file is neither in the inbox nor in "
                                 f"{FAILED_DIR}/", path=path)  # fmt: skip
        self._run(path, job, "retried", raise_errors=True)

    def _create(self, path: Path, digest: str) -> str:
        kind = media_kind(path)
        base = self.library / IMAGES_DIR if kind == "images" else self.library
        stem = slug(path.stem)
        output, n = base / stem, 1
        while (output.exists() or (kind == "publish" and stem in (IMAGES_DIR, FAILED_DIR))
               or output.with_name(f".{output.name}.lock").exists()):  # fmt: skip
            n += 1
            stem = f"{slug(path.stem)}-{n}"
            output = base / stem
        extra = self.image_args if kind == "images" else self.publish_args
        args = {"argv": [*extra, "-o", str(output), "--", str(path)], "cwd": str(self.inbox),
                "watch": {"inbox": str(self.inbox), "library": str(self.library),
                          "name": path.name, "digest": digest}}  # fmt: skip
        return self.state.store.create(kind, args, str(output), subject=self.subject(digest))

    def _run(self, path: Path, job: Job | str, event: str, *, raise_errors: bool = False) -> None:
        job = self.state.store.get(job) if isinstance(job, str) else job
        self._emit(event, path, job)
        started = time.monotonic()
        try:
            self.process(job)
        except Exception as exc:
            self._settle_record(job.id, exc)
            self._fail(path, self.state.store.get(job.id), describe(exc))
            if raise_errors:
                raise
            return
        self._settle_record(job.id, None)
        self._emit("done", path, self.state.store.get(job.id),
                   seconds=round(time.monotonic() - started, 3))  # fmt: skip

    def _settle_record(self, job_id: str, exc: Exception | None) -> None:
        """A command that failed (or succeeded) before it reached its job record still
        leaves the job ended, so it is not resumed forever."""
        store = self.state.store
        job = store.get(job_id)
        if job.status not in ACTIVE:
            return
        if job.status == QUEUED:
            store.start(job_id)
        if exc is None:
            store.finish(job_id)
        else:
            store.fail(job_id, describe(exc), error_code(exc))

    def _fail(self, path: Path, job: Job, error: str) -> None:
        failed = self.inbox / FAILED_DIR
        failed.mkdir(exist_ok=True)
        target = failed / path.name
        if target.exists():
            target = self._failed_names(path, job.id)[1]
        with contextlib.suppress(FileNotFoundError):
            path.rename(target)
        note = (f"{error}\n\njob {job.id} ({job.kind}); when the cause is fixed: "
                f"reelforge jobs retry {job.id}\n")  # fmt: skip
        target.with_name(target.name + ERROR_SUFFIX).write_text(note, encoding="utf-8")
        self._emit("failed", path, job, error=error, moved_to=str(target))

    @staticmethod
    def _failed_names(path: Path, job_id: str) -> list[Path]:
        failed = path.parent / FAILED_DIR
        return [failed / path.name, failed / f"{path.stem}-{job_id}{path.suffix}"]

    # --- events and the lock -----------------------------------------------------------

    def _emit(self, event: str, path: Path, job: Job, **extra) -> None:
        self.on_event({"event": event, "file": path.name, "job": job.id, "kind": job.kind,
                       "output": job.output, **extra})  # fmt: skip

    def _tell_once(self, path: Path, digest: str, event: str, job: Job, **extra) -> None:
        if (path.name, digest) not in self._told:
            self._told.add((path.name, digest))
            self._emit(event, path, job, **extra)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.inbox / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
                raise InputError(f"is already watched (PID {pid})", path=self.inbox) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)
