"""The tasks workers run: ``run_job`` runs a recorded job's command as a child process.

Contract of ``run_job(job_id, attempt)`` (``attempt``: the job's attempts when it was sent;
the task makes the next one happen, once):

- idempotent: a job already ``done`` or ``cancelled`` returns at once; a job that another
  delivery runs (its process alive on this host, or written to in the last
  :data:`~reelforge.workers.lease.STALE_S` seconds from another) is watched until it ends,
  and taken over if its runner goes silent; a job whose process died is retried from its
  failed step (``reelforge jobs retry ID``), a queued one run (``jobs run ID``);
- a job that fails for a passing reason (codes :data:`TRANSIENT`: a hosted API that kept
  failing, the disk, a process killed from outside) is retried with exponential backoff
  and jitter, up to ``config.worker_max_retries`` times; the job records when the retry is
  due (``args["worker"]["retry_at"]``), so whoever follows it keeps waiting;
- a poison input (any other code: ``input``, ``media``, ...) fails its job once, with its
  error, and is never run again for this delivery: the task fails with :class:`JobFailed`;
- a worker told to stop (SIGTERM, see :mod:`reelforge.workers.celery`) interrupts the job
  and hands the message back to the queue (another worker resumes the job);
- the result is ``{"job", "status", "worker", "printed", "ran"}``: ``printed`` is the JSON
  document the command printed (publish's report, make's report line), kept in the job
  (``args["worker"]["printed"]``) by the delivery that ran it, so a redelivered message
  that found the job running or done (``ran`` false) returns it too, and a follower finds
  it in the job store whatever became of the result backend.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from celery import shared_task
from celery.exceptions import Reject
from celery.utils.time import get_exponential_backoff_interval

from reelforge.pipeline.jobs import CANCELLED, DONE, FAILED, RUNNING, Job, JobStore
from reelforge.workers import lease
from reelforge.workers.local import JobProcess, job_command, last_error_line

RUN_JOB = "reelforge.run_job"
TRANSIENT = ("backend", "os", "interrupted")  # failures that another try may not repeat
BACKOFF_S = 2  # seconds: the first retry's longest backoff; doubled each time
WATCH_S = 1.0  # how often a delivery that watches another's run looks at the job

_stores: dict[tuple[int, str], JobStore] = {}


class JobFailed(Exception):  # noqa: N818 (reads as the task's outcome)
    """The job failed for good (its error is in the job store); the task is not retried."""

    def __init__(self, job_id: str, code: str | None, error: str | None) -> None:
        super().__init__(job_id, code, error)
        self.job_id, self.code, self.error = job_id, code, error

    def __str__(self) -> str:
        return f"job {self.job_id} failed ({self.code}): {self.error}"


class TransientJobError(Exception):
    """The job failed for a passing reason (one of :data:`TRANSIENT`); retried."""

    def __init__(self, job_id: str, code: str | None, error: str | None) -> None:
        super().__init__(job_id, code, error)
        self.job_id, self.code, self.error = job_id, code, error

    def __str__(self) -> str:
        return f"job {self.job_id} failed ({self.code}), to be retried: {self.error}"


class WorkerStopping(Exception):  # noqa: N818
    """The worker stops: the job was interrupted and its message goes back to the queue."""


def store_for(url: str) -> JobStore:
    """This process's job store for ``url`` (one per process: never shared across a fork)."""
    key = (os.getpid(), url)
    if key not in _stores:
        _stores[key] = JobStore(url)
    return _stores[key]


def run_recorded_job(store: JobStore, job_id: str, attempt: int | None, *, worker: str,
                     stopping: threading.Event, sent_at: float | None = None,
                     env: dict[str, str] | None = None,
                     stale_s: float = lease.STALE_S) -> dict[str, Any]:  # fmt: skip
    """The body of ``run_job`` without Celery (see the module docstring): returns the
    result, or raises :class:`JobFailed`, :class:`TransientJobError` or
    :class:`WorkerStopping`. ``sent_at``: when the message was sent (a job cancelled after
    it is left cancelled; one cancelled before it is being retried)."""
    while True:
        if stopping.is_set():
            raise WorkerStopping(job_id)
        job = store.get(job_id)
        if job.status == DONE:
            return _result(job, worker)
        if job.status == CANCELLED and (sent_at is None or job.finished_at is None
                                        or job.finished_at.timestamp() >= sent_at):  # fmt: skip
            return _result(job, worker)
        if job.status == RUNNING:
            if lease.runner_alive(store, job, stale_s):
                stopping.wait(WATCH_S)
            else:
                lease.take_over(store, job_id, stale_s)
            continue
        if job.cancel_requested and job.status != CANCELLED:  # taken over while cancelling
            store.cancel(job_id)
            continue
        if (job.status == FAILED and attempt is not None and job.attempts > attempt
                and job.error_code not in TRANSIENT):  # fmt: skip
            raise JobFailed(job.id, job.error_code, job.error)  # this delivery's try happened
        result = _run_child(store, job, worker=worker, stopping=stopping, env=env)
        if result is not None:
            return result


_LOOK_AGAIN = None  # _run_child's answer when the job changed before its command took it


def _run_child(store: JobStore, job: Job, *, worker: str, stopping: threading.Event,
               env: dict[str, str] | None) -> dict[str, Any] | None:  # fmt: skip
    command = job_command(job)
    assert command is not None  # queued, failed, interrupted or cancelled
    cwd = job.args.get("cwd")
    lease.note(store, job.id, by=worker, retry_at=None)
    with JobProcess(command, cwd=cwd if cwd and Path(cwd).is_dir() else None, env=env,
                    capture_stdout=True, die_with_parent=True) as child:  # fmt: skip
        beat = time.monotonic()
        while child.poll() is None:
            if stopping.wait(0.25):
                child.interrupt()  # the signal handler did already; a late start needs it
                child.wait()
                break
            if time.monotonic() - beat >= lease.HEARTBEAT_S:
                beat = time.monotonic()
                lease.heartbeat(store, job.id)
    returncode, printed, tail = child.returncode, child.stdout(), child.tail()
    ended = store.get(job.id)
    if ended.status == RUNNING:  # killed before it could say so
        store.recover()
        ended = store.get(job.id)
    if ended.status == DONE or (ended.status == CANCELLED and (
            ended.attempts > job.attempts or job.status != CANCELLED)):  # fmt: skip
        if ended.status == DONE and printed:
            lease.note(store, job.id, printed=_printed(printed))
            ended = store.get(job.id)
        return _result(ended, worker, ran=True)  # done, or cancelled while it ran
    if ended.attempts == job.attempts and ended.status != job.status and not stopping.is_set():
        return _LOOK_AGAIN  # cancelled or recovered meanwhile: the command refused it
    if ended.attempts == job.attempts:  # the command never started the job
        code = "input" if returncode == 2 else "internal"
        store.fail(job.id, last_error_line(tail) or f"the job's command ended with "
                   f"{returncode}", code)  # fmt: skip
        ended = store.get(job.id)
    if stopping.is_set():
        raise WorkerStopping(job.id)
    if ended.error_code in TRANSIENT:
        raise TransientJobError(ended.id, ended.error_code, ended.error)
    raise JobFailed(ended.id, ended.error_code, ended.error)


def _printed(stdout: str) -> Any:
    """The JSON document a command printed: all of it, or its last line (after JSON lines
    of progress); None if there is none."""
    text = stdout.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return json.loads(text.splitlines()[-1])
    except ValueError:
        return None


def _result(job: Job, worker: str, *, ran: bool = False) -> dict[str, Any]:
    return {"job": job.id, "status": job.status, "worker": worker,
            "printed": lease.worker_info(job).get("printed"), "ran": ran}  # fmt: skip


@shared_task(bind=True, name=RUN_JOB, acks_late=True, reject_on_worker_lost=True)
def run_job(
    self, job_id: str, attempt: int | None = None, sent_at: float | None = None
) -> dict[str, Any]:
    """Run job ``job_id`` (see the module docstring)."""
    from reelforge.workers.celery import STOPPING

    settings = self.app.settings
    retries = self.request.retries
    try:
        store = store_for(settings.jobs_store_url)
        return run_recorded_job(store, job_id, attempt, worker=self.request.hostname or "",
                                stopping=STOPPING, sent_at=sent_at)  # fmt: skip
    except WorkerStopping:
        raise Reject("the worker is stopping", requeue=True) from None
    except (TransientJobError, sa.exc.OperationalError) as exc:
        if retries >= settings.worker_max_retries:
            if isinstance(exc, TransientJobError):
                lease.note(store, job_id, retry_at=None)
                raise JobFailed(job_id, exc.code, exc.error) from None
            raise
        countdown = get_exponential_backoff_interval(
            factor=BACKOFF_S, retries=retries,
            maximum=max(1, int(settings.worker_visibility_timeout / 2)), full_jitter=True,
        )  # fmt: skip
        if isinstance(exc, TransientJobError):
            lease.note(store, job_id, retry_at=time.time() + countdown)
        raise self.retry(exc=exc, countdown=countdown,
                         max_retries=settings.worker_max_retries) from None  # fmt: skip
