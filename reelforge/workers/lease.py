"""What workers add to a job's record, and taking over a job whose runner went away.

Contract: a job's ``args["worker"]`` holds what the workers know of it: ``task`` (the Celery
task last sent for it), ``queue``, ``sent_at``, ``attempt`` (the job's attempts when it was
sent), ``by`` (the worker that runs or last ran it) and ``retry_at`` (when a retry after a
passing failure is due; None when none is). :func:`note` merges keys into it in one
transaction, the row locked, so two writers never lose each other's keys; the command and
its folder (``argv``, ``cwd``) are never touched.

A running job's runner is alive (:func:`runner_alive`) when, on this host, its process is
there (checked by PID and start time, :meth:`JobStore.recover`), and, on another host, when
the job was written to less than ``stale_s`` seconds ago: its runner calls
:func:`heartbeat` every :data:`HEARTBEAT_S` seconds and the job's progress writes count
too. :func:`take_over` marks a running job whose last write is older than ``stale_s``
``interrupted``, so it can be retried; of two workers that try at once, one succeeds.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from reelforge.pipeline.jobs import INTERRUPTED, RUNNING, Job, JobStore, jobs_table, steps_table

HEARTBEAT_S = 5.0
STALE_S = 30.0  # a running job not written to for this long has lost its runner


def worker_info(job: Job) -> dict[str, Any]:
    """``job.args["worker"]`` (empty when no worker has seen the job)."""
    info = job.args.get("worker")
    return dict(info) if isinstance(info, dict) else {}


def note(store: JobStore, job_id: str, **values: Any) -> None:
    """Merge ``values`` into the job's ``args["worker"]``."""
    with store.engine.begin() as c:
        args = c.execute(sa.select(jobs_table.c.args).where(jobs_table.c.id == job_id)
                         .with_for_update()).scalar()  # fmt: skip
        if args is None:
            return
        args = dict(args)
        args["worker"] = {**(args.get("worker") or {}), **values}
        c.execute(jobs_table.update().where(jobs_table.c.id == job_id).values(args=args))


def heartbeat(store: JobStore, job_id: str) -> None:
    """The job's runner is alive: refresh its ``updated_at`` (only while it runs)."""
    with store.engine.begin() as c:
        c.execute(jobs_table.update()
                  .where(jobs_table.c.id == job_id, jobs_table.c.status == RUNNING)
                  .values(updated_at=time.time()))  # fmt: skip


def runner_alive(store: JobStore, job: Job, stale_s: float = STALE_S) -> bool:
    """Whether a running ``job`` still has its runner (see the module docstring)."""
    if job.host == store.host:
        store.recover()  # this host's jobs whose process is gone become interrupted
        return store.get(job.id).status == RUNNING
    return time.time() - job.updated_at.timestamp() < stale_s


def take_over(store: JobStore, job_id: str, stale_s: float = STALE_S) -> bool:
    """Mark the job ``interrupted`` if it is running and silent for ``stale_s`` seconds;
    True if this call did."""
    now = time.time()
    with store.engine.begin() as c:
        done = c.execute(jobs_table.update()
                         .where(jobs_table.c.id == job_id, jobs_table.c.status == RUNNING,
                                jobs_table.c.updated_at < now - stale_s)
                         .values(status=INTERRUPTED, error="its worker went away",
                                 error_code="interrupted", current_step=None,
                                 finished_at=now, updated_at=now))  # fmt: skip
        if done.rowcount != 1:
            return False
        c.execute(steps_table.update()
                  .where(steps_table.c.job_id == job_id, steps_table.c.status == "running")
                  .values(status="failed", error="interrupted", finished_at=now))  # fmt: skip
    return True
