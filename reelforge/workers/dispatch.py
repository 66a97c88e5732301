"""The sending side: which queue a job goes to, sending it, following it, revoking it.

Contract:

- :func:`queue_for` names a job kind's queue (:data:`KIND_QUEUES`; ``cpu`` for any other);
- :func:`send` records the task in the job (``args["worker"]``: ``task``, ``queue``,
  ``sent_at``, ``attempt``) and sends ``run_job`` to the job's queue; it returns the task id;
- :func:`awaiting_worker` says whether a job that is not running now will be run again
  without anyone asking: a retry after a passing failure is due, or a job interrupted by
  its worker's loss or shutdown is waiting for its message to come back (within the
  visibility timeout, plus :data:`GRACE_S`);
- :func:`follow` mirrors a job's progress from the job store into a progress sink until it
  ends (the job store is the record: the broker may restart meanwhile), and
  :class:`CeleryRun` is the same for the web service's pool, shaped like a local job
  process (:class:`reelforge.workers.local.JobProcess`);
- :func:`revoke` tells the workers to drop a job's task (a job is stopped by its cancel
  flag; revoking only keeps a task that has not started from starting);
- :func:`live_workers`: the workers that answer, their queues and current tasks;
- :func:`job_error`: the error a local run would have raised for a job that ended badly.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from reelforge.errors import (
    BackendError,
    Cancelled,
    InputError,
    MediaError,
    OutputError,
    ReelforgeError,
)
from reelforge.pipeline.jobs import (
    ACTIVE,
    DONE,
    FAILED,
    INTERRUPTED,
    QUEUED,
    RETRYABLE,
    Job,
    JobStore,
)
from reelforge.pipeline.runner import JobCancelled, ProgressSink
from reelforge.workers import lease

# Job kinds and their queues. Steps that need a GPU (a local voice or lip-sync model) go to
# "gpu" and steps that mostly wait on a hosted API to "io" once steps run as tasks of their
# own; a job of one of these kinds runs its steps where the job runs.
KIND_QUEUES = {"publish": "cpu", "images": "cpu", "make": "cpu", "watch": "cpu"}
GRACE_S = 60.0
POLL_S = 0.25
log = logging.getLogger("reelforge.workers")


def queue_for(kind: str) -> str:
    return KIND_QUEUES.get(kind, "cpu")


def send(app, store: JobStore, job: Job) -> str:
    """Send ``run_job`` for ``job`` (as it stands now) to its queue; returns the task id."""
    from celery.utils import uuid

    from reelforge.workers.tasks import RUN_JOB

    task_id, queue, now = uuid(), queue_for(job.kind), time.time()
    lease.note(store, job.id, task=task_id, queue=queue, sent_at=now, attempt=job.attempts,
               retry_at=None)  # fmt: skip
    # by this app, from any thread (Celery's "current app" is per thread)
    app.tasks[RUN_JOB].apply_async(args=[job.id, job.attempts, now], queue=queue,
                                   task_id=task_id)  # fmt: skip
    return task_id


def awaiting_worker(job: Job, visibility_timeout: float) -> bool:
    """Whether ``job`` (not running) is due to run again by itself (module docstring)."""
    now = time.time()
    if job.status == FAILED:
        retry_at = lease.worker_info(job).get("retry_at")
        return retry_at is not None and now < float(retry_at) + GRACE_S
    if job.status == INTERRUPTED and "task" in lease.worker_info(job):
        return now - job.updated_at.timestamp() < visibility_timeout + GRACE_S
    return False


def finished(job: Job, visibility_timeout: float) -> bool:
    """Whether ``job`` has ended for good (nothing will run it without being asked)."""
    return job.status not in ACTIVE and not awaiting_worker(job, visibility_timeout)


def follow(store: JobStore, job_id: str, sink: ProgressSink, *,
           visibility_timeout: float) -> Job:  # fmt: skip
    """Report the job's steps to ``sink`` as they progress (the running step's stage and
    fraction; ``done``/``cached`` at 1.0 as each ends) until it has finished; returns it."""
    shown: dict[tuple[int, int], tuple] = {}
    while True:
        job = store.get(job_id)
        for n, step in enumerate(job.current_steps()):
            if step.status == "running":
                state = (step.stage, round(step.progress or 0.0, 3))
                if shown.get((job.attempts, n)) != state:
                    shown[(job.attempts, n)] = state
                    sink.report(step.name, step.stage or step.name, step.progress or 0.0)
            elif step.status in ("done", "cached") and shown.get((job.attempts, n)) != "end":
                shown[(job.attempts, n)] = "end"
                sink.report(step.name, step.status, 1.0)
        if finished(job, visibility_timeout):
            return job
        time.sleep(POLL_S)


def job_error(job: Job) -> ReelforgeError:
    """The error a local run of ``job`` would have ended with (its message and exit code)."""
    message, code = job.error or f"job {job.id} {job.status}", job.error_code
    if job.status == "cancelled" or code == "cancelled":
        return JobCancelled(job.id)
    if job.status == INTERRUPTED or code == "interrupted":
        return Cancelled("interrupted; partial output removed")
    kinds = {"media": MediaError, "backend": BackendError, "output": OutputError}
    if code in kinds:
        return kinds[code](message)
    if code in (None, "error", "internal", "os"):
        return ReelforgeError(message)
    return InputError(message, code=code)


def printed_result(app, store: JobStore, job: Job, task_id: str,
                   timeout: float = 10.0) -> Any:  # fmt: skip
    """What the command printed: from the job store (the delivery that ran it keeps it
    there just after the job is done, so it is waited for up to ``timeout`` seconds), else
    from the task's result; None if it is in neither by then."""
    deadline = time.monotonic() + timeout
    while True:
        if (printed := lease.worker_info(job).get("printed")) is not None:
            return printed
        with contextlib.suppress(Exception):  # the result backend restarted, a watcher's result
            result = app.AsyncResult(task_id).get(timeout=0.5, propagate=False)
            if isinstance(result, dict) and result.get("printed") is not None:
                return result["printed"]
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)
        job = store.get(job.id) or job


def revoke(app, task_id: str | None) -> None:
    """Ask every worker to drop ``task_id`` if it has not started (best effort)."""
    if not task_id:
        return
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            app.control.revoke(task_id, connection=conn)
    except Exception as exc:  # the broker is away: the job's cancel flag still stops it
        log.warning("could not revoke task %s (%s)", task_id, exc)


def live_workers(app, timeout: float = 1.0) -> list[dict[str, Any]]:
    """``[{"name", "queues", "concurrency", "pid", "tasks": [{"id", "job", "started"}],
    "reserved"}]`` for each worker that answers within ``timeout`` seconds, by name."""
    from kombu.exceptions import OperationalError

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            replies = app.control.ping(timeout=timeout, connection=conn)
            names = sorted({name for reply in replies for name in reply})
            if not names:
                return []
            # asked by name, each query ends as soon as every one of them has answered
            inspect = app.control.inspect(destination=names, limit=len(names),
                                          timeout=timeout, connection=conn)  # fmt: skip
            queues = inspect.active_queues() or {}
            active = inspect.active() or {}
            reserved = inspect.reserved() or {}
            stats = inspect.stats() or {}
    except OperationalError as exc:  # kombu's wrapper of the transport's connection errors
        raise ReelforgeError(f"cannot reach the broker ({exc})") from None
    workers = []
    for name in names:
        info = stats.get(name, {})
        tasks = [{"id": t.get("id"), "job": (t.get("args") or [None])[0],
                  "started": t.get("time_start")} for t in active.get(name, [])]  # fmt: skip
        workers.append({
            "name": name,
            "queues": sorted(q["name"] for q in queues.get(name, [])),
            "concurrency": info.get("pool", {}).get("max-concurrency"),
            "pid": info.get("pid"),
            "tasks": tasks,
            "reserved": len(reserved.get(name, [])),
        })  # fmt: skip
    return workers


class CeleryRun:
    """A job sent to the workers, followed like a local job process: :meth:`poll` is None
    until the job has finished (0: done, 1: not), :meth:`stop` revokes its task,
    :meth:`interrupt` stops following (the job goes on on its worker)."""

    def __init__(self, app, store: JobStore, job_id: str, task_id: str | None) -> None:
        self.app, self.store, self.job_id, self.task_id = app, store, job_id, task_id
        self.returncode: int | None = None
        self._detached = False

    def poll(self) -> int | None:
        if self.returncode is None:
            if self._detached:
                self.returncode = -1
            else:
                job = self.store.get(self.job_id)
                if finished(job, self.app.settings.worker_visibility_timeout):
                    self.returncode = 0 if job.status == DONE else 1
        return self.returncode

    def interrupt(self) -> None:
        self._detached = True

    def stop(self) -> None:
        revoke(self.app, self.task_id)

    def tail(self) -> list[str]:
        return []  # the job's error is in the job store

    def close(self) -> None:
        pass


def start(app, store: JobStore, job: Job) -> CeleryRun:
    """``job`` as a :class:`CeleryRun`: sent to the workers unless it runs or has ended."""
    task_id = lease.worker_info(job).get("task")
    if job.status == QUEUED or job.status in RETRYABLE:
        task_id = send(app, store, job)
    return CeleryRun(app, store, job.id, task_id)
