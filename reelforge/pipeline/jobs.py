"""The job store: what ran, with which arguments, how far it got and how it ended.

Contract: :class:`JobStore` keeps jobs and their steps in any SQLAlchemy database: a
SQLite file by default (WAL, writers wait for each other instead of failing), a PostgreSQL
URL when several machines share it. Every method is one short transaction, so any number
of processes may use one store.

A job's status moves ``queued -> running -> done | failed | cancelled | interrupted``
(Mux's ``waiting -> ready | errored``, with the two ways a job can stop before its end kept
apart): ``interrupted`` is a job whose process went away (killed, the machine restarted)
or was stopped with Ctrl-C/SIGTERM; it and ``failed`` jobs can be retried. A step is
``running``, ``done`` (built by this run), ``cached`` (found in the step cache) or
``failed``. A job records ``kind`` and ``args`` (what reruns it), its output, an optional
``subject`` (what it is about, e.g. an input's digest, for finding it again), the process
that runs it (host, PID and the process's start time, so a reused PID is not mistaken for
it) and a cancel flag the runner checks.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel

from reelforge.errors import InputError

QUEUED, RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED = (
    "queued", "running", "done", "failed", "cancelled", "interrupted",
)  # fmt: skip
JOB_STATUSES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED)
ACTIVE = (QUEUED, RUNNING)
RETRYABLE = (FAILED, INTERRUPTED, CANCELLED)
STEP_STATUSES = ("running", "done", "cached", "failed")

StepStatus = Literal["running", "done", "cached", "failed"]


class UnknownJobError(InputError):
    """No job has this id."""

    code = "no-such-job"
    http_status = 404

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job {job_id!r} (see: reelforge jobs list)")
        self.job_id = job_id


class StepRecord(BaseModel):
    name: str
    key: str
    status: StepStatus
    attempt: int
    progress: float | None = None  # 0..1 while running
    stage: str | None = None  # the step's current stage (encode, package, ...)
    seconds: float | None = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Job(BaseModel):
    id: str
    kind: str
    args: dict[str, Any]
    output: str
    subject: str | None = None
    status: str
    error: str | None = None
    error_code: str | None = None
    attempts: int = 0  # runs started (a retry is one more)
    cancel_requested: bool = False
    current_step: str | None = None
    host: str | None = None
    pid: int | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime
    steps: list[StepRecord] = []  # every attempt's, in order

    def current_steps(self) -> list[StepRecord]:
        """The steps of the latest attempt."""
        return [s for s in self.steps if s.attempt == self.attempts]


metadata = sa.MetaData()
jobs_table = sa.Table(
    "jobs", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(40), nullable=False, index=True),
    sa.Column("args", sa.JSON, nullable=False),
    sa.Column("output", sa.Text, nullable=False),
    sa.Column("subject", sa.String(160), index=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("error", sa.Text),
    sa.Column("error_code", sa.String(40)),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("current_step", sa.String(80)),
    sa.Column("host", sa.String(255)),
    sa.Column("pid", sa.Integer),
    sa.Column("pid_started", sa.String(40)),  # the process's start time: PIDs get reused
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("updated_at", sa.Float, nullable=False),
)  # fmt: skip
steps_table = sa.Table(
    "job_steps", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"),
              nullable=False, index=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("key", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("progress", sa.Float),
    sa.Column("stage", sa.String(80)),
    sa.Column("seconds", sa.Float),
    sa.Column("error", sa.Text),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
)  # fmt: skip

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford's base32, lower case
_id_lock = threading.Lock()
_last_ms = 0


def new_job_id() -> str:
    """14 characters: milliseconds since 1970 (10, so ids sort by creation) + 4 random."""
    global _last_ms
    with _id_lock:
        ms = max(int(time.time() * 1000), _last_ms + 1)  # strictly increasing here
        _last_ms = ms
    stamp = "".join(_ALPHABET[(ms >> (5 * i)) & 31] for i in reversed(range(10)))
    return stamp + "".join(secrets.choice(_ALPHABET) for _ in range(4))


def process_start_token(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the name may hold spaces


def process_alive(pid: int, token: str | None) -> bool:
    """Whether ``pid`` is still the process that had start time ``token``."""
    if Path("/proc/self/stat").exists():
        now = process_start_token(pid)
        return now is not None and (token is None or now == token)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _utc(t: float | None) -> datetime | None:
    return datetime.fromtimestamp(t, UTC) if t is not None else None


def open_engine(url_or_path: str | Path) -> sa.Engine:
    """A SQLAlchemy engine for a URL or a SQLite file path (its folder made); SQLite gets
    WAL, a 30 s busy timeout, foreign keys and IMMEDIATE transactions."""
    text = str(url_or_path)
    if "://" not in text:
        path = Path(text).expanduser().absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        text = f"sqlite:///{path}"
    engine = sa.create_engine(text)
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _connect(dbapi_conn, record) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout = 30000")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn) -> None:
            # IMMEDIATE: take the write lock up front, so two writers queue on the busy
            # timeout instead of one failing when it upgrades a read to a write
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class JobStore:
    """See the module docstring. ``url_or_path``: a SQLAlchemy URL or a SQLite file path."""

    def __init__(self, url_or_path: str | Path) -> None:
        self.url = str(url_or_path)
        self.engine = open_engine(url_or_path)
        metadata.create_all(self.engine)
        self.host = socket.gethostname()

    def close(self) -> None:
        self.engine.dispose()

    # --- jobs ---------------------------------------------------------------------------

    def create(self, kind: str, args: dict, output: str, *, subject: str | None = None) -> str:
        """A new ``queued`` job; returns its id (short, unique, sorted by creation)."""
        now = time.time()
        for _ in range(5):
            job_id = new_job_id()
            try:
                with self.engine.begin() as c:
                    c.execute(jobs_table.insert().values(
                        id=job_id, kind=kind, args=args, output=str(output), subject=subject,
                        status=QUEUED, attempts=0, cancel_requested=False, host=self.host,
                        pid=os.getpid(), pid_started=process_start_token(os.getpid()),
                        created_at=now, updated_at=now,
                    ))  # fmt: skip
                return job_id
            except sa.exc.IntegrityError:
                continue
        raise RuntimeError("could not allocate a job id")

    def start(self, job_id: str) -> None:
        """This process runs the job now (a new attempt): ``running``, errors cleared."""
        self._require(job_id)
        now = time.time()
        with self.engine.begin() as c:
            c.execute(jobs_table.update().where(jobs_table.c.id == job_id).values(
                status=RUNNING, attempts=jobs_table.c.attempts + 1, started_at=now,
                finished_at=None, error=None, error_code=None, cancel_requested=False,
                current_step=None, host=self.host, pid=os.getpid(),
                pid_started=process_start_token(os.getpid()), updated_at=now,
            ))  # fmt: skip

    def finish(self, job_id: str) -> None:
        self._end(job_id, DONE)

    def fail(self, job_id: str, error: str, code: str | None = None) -> None:
        self._end(job_id, FAILED, error=error, error_code=code)

    def interrupt(self, job_id: str, error: str = "interrupted") -> None:
        """The run stopped before its end (Ctrl-C, SIGTERM): resumable with retry."""
        self._end(job_id, INTERRUPTED, error=error, error_code="interrupted")

    def mark_cancelled(self, job_id: str) -> None:
        """The runner stopped because the job was cancelled."""
        self._end(job_id, CANCELLED, error="cancelled", error_code="cancelled")

    def cancel(self, job_id: str) -> Job:
        """Ask the job to stop: a running job stops at its next check (and is then marked
        ``cancelled``); a queued, failed or interrupted one is ``cancelled`` at once (never
        resumed); a done or cancelled job is left as it is. Returns the job."""
        job = self.get(job_id)
        now = time.time()
        with self.engine.begin() as c:
            if job.status == RUNNING:
                c.execute(jobs_table.update().where(jobs_table.c.id == job_id)
                          .values(cancel_requested=True, updated_at=now))  # fmt: skip
            elif job.status in (QUEUED, FAILED, INTERRUPTED):
                c.execute(jobs_table.update().where(jobs_table.c.id == job_id).values(
                    status=CANCELLED, cancel_requested=True, finished_at=now, updated_at=now,
                    error=job.error or "cancelled", error_code=job.error_code or "cancelled",
                ))  # fmt: skip
        return self.get(job_id)

    def cancelled(self, job_id: str) -> bool:
        with self.engine.connect() as c:
            flag = c.execute(sa.select(jobs_table.c.cancel_requested)
                             .where(jobs_table.c.id == job_id)).scalar()  # fmt: skip
        return bool(flag)

    def get(self, job_id: str) -> Job:
        with self.engine.connect() as c:
            row = c.execute(sa.select(jobs_table).where(jobs_table.c.id == job_id)).first()
            if row is None:
                raise UnknownJobError(job_id)
            steps = c.execute(sa.select(steps_table).where(steps_table.c.job_id == job_id)
                              .order_by(steps_table.c.id)).all()  # fmt: skip
        return _job(row, steps)

    def list(self, status: str | None = None, limit: int = 50, *, kind: str | None = None,
             subject: str | None = None) -> list[Job]:  # fmt: skip
        """Newest first; steps included."""
        query = sa.select(jobs_table).order_by(jobs_table.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(jobs_table.c.status == status)
        if kind is not None:
            query = query.where(jobs_table.c.kind == kind)
        if subject is not None:
            query = query.where(jobs_table.c.subject == subject)
        with self.engine.connect() as c:
            rows = c.execute(query).all()
            ids = [r.id for r in rows]
            steps = c.execute(sa.select(steps_table).where(steps_table.c.job_id.in_(ids))
                              .order_by(steps_table.c.id)).all() if ids else []  # fmt: skip
        by_job: dict[str, list] = {}
        for s in steps:
            by_job.setdefault(s.job_id, []).append(s)
        return [_job(r, by_job.get(r.id, [])) for r in rows]

    def recover(self) -> list[str]:
        """Jobs of this host marked queued or running whose process is gone (its PID
        absent, or reused by a process that started later) become ``interrupted``;
        returns their ids. Jobs of other hosts are left to those hosts."""
        with self.engine.connect() as c:
            rows = c.execute(sa.select(jobs_table.c.id, jobs_table.c.pid,
                                       jobs_table.c.pid_started)
                             .where(jobs_table.c.status.in_(ACTIVE),
                                    jobs_table.c.host == self.host)).all()  # fmt: skip
        gone = [r.id for r in rows if r.pid is None or not process_alive(r.pid, r.pid_started)]
        now = time.time()
        for job_id in gone:
            with self.engine.begin() as c:
                c.execute(jobs_table.update()
                          .where(jobs_table.c.id == job_id, jobs_table.c.status.in_(ACTIVE))
                          .values(status=INTERRUPTED, error="its process went away",
                                  error_code="interrupted", finished_at=now,
                                  updated_at=now))  # fmt: skip
                c.execute(steps_table.update()
                          .where(steps_table.c.job_id == job_id,
                                 steps_table.c.status == "running")
                          .values(status="failed", error="interrupted",
                                  finished_at=now))  # fmt: skip
        return gone

    # --- steps --------------------------------------------------------------------------

    def step_started(self, job_id: str, name: str, key: str) -> None:
        now = time.time()
        with self.engine.begin() as c:
            attempt = self._attempt(c, job_id)
            c.execute(steps_table.insert().values(
                job_id=job_id, attempt=attempt, name=name, key=key, status="running",
                progress=0.0, started_at=now,
            ))  # fmt: skip
            c.execute(jobs_table.update().where(jobs_table.c.id == job_id)
                      .values(current_step=name, updated_at=now))  # fmt: skip

    def step_progress(self, job_id: str, name: str, fraction: float,
                      stage: str | None = None) -> None:  # fmt: skip
        with self.engine.begin() as c:
            row_id = self._running_step(c, job_id, name, None)
            if row_id is None:
                return
            c.execute(steps_table.update().where(steps_table.c.id == row_id)
                      .values(progress=max(0.0, min(1.0, fraction)), stage=stage))  # fmt: skip
            c.execute(jobs_table.update().where(jobs_table.c.id == job_id)
                      .values(updated_at=time.time()))  # fmt: skip

    def step_finished(self, job_id: str, name: str, key: str,
                      status: Literal["done", "cached"], seconds: float) -> None:  # fmt: skip
        if status not in ("done", "cached"):
            raise ValueError(f"step status must be done or cached, not {status!r}")
        self._step_end(job_id, name, key, status=status, seconds=round(seconds, 3),
                       progress=1.0)  # fmt: skip

    def step_failed(self, job_id: str, name: str, key: str, error: str) -> None:
        self._step_end(job_id, name, key, status="failed", error=error)

    # --- internals ----------------------------------------------------------------------

    def _require(self, job_id: str) -> None:
        with self.engine.connect() as c:
            if c.execute(sa.select(jobs_table.c.id).where(jobs_table.c.id == job_id)).first() \
                    is None:  # fmt: skip
                raise UnknownJobError(job_id)

    def _end(self, job_id: str, status: str, **values) -> None:
        self._require(job_id)
        now = time.time()
        with self.engine.begin() as c:
            c.execute(
                jobs_table.update()
                .where(jobs_table.c.id == job_id)
                .values(status=status, finished_at=now, updated_at=now, current_step=None, **values)
            )
            if status != DONE:
                c.execute(steps_table.update()
                          .where(steps_table.c.job_id == job_id,
                                 steps_table.c.status == "running")
                          .values(status="failed", error=values.get("error") or status,
                                  finished_at=now))  # fmt: skip

    @staticmethod
    def _attempt(c: sa.Connection, job_id: str) -> int:
        attempt = c.execute(sa.select(jobs_table.c.attempts)
                            .where(jobs_table.c.id == job_id)).scalar()  # fmt: skip
        if attempt is None:
            raise UnknownJobError(job_id)
        return attempt

    def _running_step(self, c: sa.Connection, job_id: str, name: str,
                      key: str | None) -> int | None:  # fmt: skip
        query = (sa.select(steps_table.c.id)
                 .where(steps_table.c.job_id == job_id, steps_table.c.name == name,
                        steps_table.c.status == "running",
                        steps_table.c.attempt == self._attempt(c, job_id))
                 .order_by(steps_table.c.id.desc()).limit(1))  # fmt: skip
        if key is not None:
            query = query.where(steps_table.c.key == key)
        return c.execute(query).scalar()

    def _step_end(self, job_id: str, name: str, key: str, **values) -> None:
        now = time.time()
        with self.engine.begin() as c:
            row_id = self._running_step(c, job_id, name, key)
            if row_id is None:  # a cached step is recorded without having been started
                c.execute(steps_table.insert().values(
                    job_id=job_id, attempt=self._attempt(c, job_id), name=name, key=key,
                    started_at=now, finished_at=now, **values))  # fmt: skip
            else:
                c.execute(steps_table.update().where(steps_table.c.id == row_id)
                          .values(finished_at=now, **values))  # fmt: skip
            c.execute(jobs_table.update().where(jobs_table.c.id == job_id)
                      .values(current_step=None, updated_at=now))  # fmt: skip


def _job(row: sa.Row, steps: list[sa.Row]) -> Job:
    return Job(
        id=row.id, kind=row.kind, args=row.args or {}, output=row.output, subject=row.subject,
        status=row.status, error=row.error, error_code=row.error_code, attempts=row.attempts,
        cancel_requested=bool(row.cancel_requested), current_step=row.current_step,
        host=row.host, pid=row.pid, created_at=_utc(row.created_at),
        started_at=_utc(row.started_at), finished_at=_utc(row.finished_at),
        updated_at=_utc(row.updated_at),
        steps=[StepRecord(name=s.name, key=s.key, status=s.status, attempt=s.attempt,
                          progress=s.progress, stage=s.stage, seconds=s.seconds, error=s.error,
                          started_at=_utc(s.started_at), finished_at=_utc(s.finished_at))
               for s in steps],
    )  # fmt: skip
