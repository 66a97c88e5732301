"""``reelforge worker`` and ``reelforge workers``, and running a command on the workers.

Contract:

- ``worker`` runs a Celery worker in this process on ``REELFORGE_BROKER``, taking jobs from
  the queues named (``cpu,gpu,io``), ``--concurrency`` at once, and prints one line once it
  is ready; SIGTERM or Ctrl-C interrupts its running jobs (they resume on another worker)
  and stops it (see :mod:`reelforge.workers.celery`).
- ``workers`` lists the live workers, their queues and the jobs they run (``--json``).
- ``publish``, ``make`` and ``watch`` take ``--workers/--local``
  (:data:`reelforge.cli_options.WorkersOpt`): with a broker set they run on the workers
  unless ``--local`` is given (:func:`use_workers`); a command that a job runs
  (``jobs run|retry``) always runs where it is. ``watch`` stays here and sends each file's
  job to the workers (:func:`follow_on_workers`).
  :func:`run_on_workers` queues the command as a job with its arguments and working
  folder, sends it, and follows it through the job store with the same progress bar or
  JSON lines and the same exit code and error line as a run here; Ctrl-C cancels the job.
  The job store (``REELFORGE_JOBS_URL``) and the command's inputs and outputs (a shared
  folder at the same path, or s3://) must be the workers' too.

Celery is imported only when one of these runs.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from reelforge.cli_options import JsonOpt
from reelforge.console import err_console, out_console
from reelforge.errors import InputError, ReelforgeError

if TYPE_CHECKING:
    from reelforge.pipeline.jobs import Job

CANCEL_WAIT_S = 15.0  # how long Ctrl-C waits for a cancelled job to stop on its worker
SEND_RETRY_S = 2.0  # how often a watcher tries again to send a job while the broker is away


def _app():
    from reelforge.cli import settings
    from reelforge.workers.celery import create_app

    return create_app(settings())


# --- reelforge worker / workers -----------------------------------------------------------


def worker(
    queues: Annotated[
        str, typer.Option("--queues", help="Comma-separated queues to take jobs from.")
    ] = "cpu,gpu,io",
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="Jobs run at once (each in its own process).")
    ] = 1,
    pool: Annotated[
        str, typer.Option("--pool", help="prefork (a process per slot) or solo (this one).")
    ] = "prefork",
    name: Annotated[
        str | None, typer.Option("--name", help="The worker's name (default: reelforge-PID@HOST).")
    ] = None,
    loglevel: Annotated[str, typer.Option("--loglevel", help="Celery's log level.")] = "warning",
) -> None:
    """Run a worker: take jobs from the broker's queues and run them. Prints one line when
    ready; SIGTERM or Ctrl-C hands its running jobs back to the queue and stops."""
    from celery import signals

    from reelforge.workers.celery import QUEUES, install_signal_policy

    chosen = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(chosen) - set(QUEUES))
    if not chosen or unknown:
        raise InputError(f"--queues must name some of {', '.join(QUEUES)}"
                         + (f", not {', '.join(unknown)}" if unknown else ""))  # fmt: skip
    if concurrency < 1:
        raise InputError("--concurrency must be 1 or more")
    if pool not in ("prefork", "solo"):
        raise InputError(f"--pool must be prefork or solo, not {pool!r}")
    if pool == "solo" and concurrency != 1:
        raise InputError("--pool solo runs one job at a time: leave --concurrency at 1")
    app = _app()
    hostname = name or f"reelforge-{os.getpid()}@{socket.gethostname()}"
    line = (f"worker {hostname} ready: queues {','.join(chosen)}, concurrency {concurrency} "
            f"({pool})")  # fmt: skip

    def ready(**_) -> None:
        print(line, flush=True)

    signals.worker_ready.connect(ready, weak=False, dispatch_uid="reelforge-worker-ready")
    celery_worker = app.Worker(
        hostname=hostname, queues=chosen, concurrency=concurrency, pool_cls=pool,
        loglevel=loglevel.upper(), quiet=True, without_gossip=True, without_heartbeat=True,
    )  # fmt: skip
    install_signal_policy(celery_worker)
    celery_worker.start()
    raise typer.Exit(celery_worker.exitcode or 0)


def list_workers(
    as_json: JsonOpt = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for workers to answer.")
    ] = 1.0,
) -> None:
    """The live workers: their queues, concurrency and the jobs they run."""
    from reelforge.workers.dispatch import live_workers

    found = live_workers(_app(), timeout=timeout)
    if as_json:
        print(json.dumps(found, indent=2))
        return
    if not found:
        out_console.print("no workers answered")
        return
    table = Table(title=f"{len(found)} workers")
    for col in ("worker", "queues", "concurrency", "jobs"):
        table.add_column(col)
    for w in found:
        jobs = ", ".join(str(t["job"]) for t in w["tasks"]) or "-"
        table.add_row(escape(w["name"]), ",".join(w["queues"]), str(w["concurrency"]), jobs)
    out_console.print(table)


# --- publish / make on the workers --------------------------------------------------------


def use_workers(flag: bool | None) -> bool:
    """Whether the running command goes to the workers (see the module docstring)."""
    from reelforge.cli import settings
    from reelforge.cli_jobs import running_nested

    if running_nested():
        return False
    broker = settings().broker
    if flag and not broker:
        raise InputError("--workers needs a broker: set REELFORGE_BROKER", option="--workers")
    return bool(broker) if flag is None else flag


def on_a_worker() -> bool:
    """Whether the running command is a job's run with a broker set: on a worker (the web
    service sends its jobs to the workers too when a broker is set)."""
    from reelforge.cli import settings
    from reelforge.cli_jobs import running_nested

    return running_nested() and bool(settings().broker)


def run_on_workers(kind: str, output: str | Path, *, json_lines: bool,
                   subject: str | None = None) -> tuple[str, Any]:  # fmt: skip
    """Queue the running command as a job, send it to the workers and follow it (JSON
    lines of progress with ``json_lines``, else one bar on a terminal); returns the job's
    id and what the command printed on its worker (None when that is not known). A job
    that did not end ``done`` raises the error a run here would have raised."""
    from reelforge.cli import settings
    from reelforge.cli_jobs import command_argv, open_state, progress_sink
    from reelforge.pipeline.jobs import DONE
    from reelforge.workers import dispatch

    cfg = settings()
    app = _app()
    store = open_state().store
    args = {"argv": command_argv(kind), "cwd": str(Path.cwd())}
    job_id = store.create(kind, args, str(output), subject=subject)
    try:
        task_id = dispatch.send(app, store, store.get(job_id))
    except Exception as exc:  # the broker cannot be reached
        message = f"cannot send the job to the workers ({exc})"
        store.fail(job_id, message, "broker")
        raise ReelforgeError(message) from None
    with progress_sink(json_lines) as sink:
        try:
            job = dispatch.follow(store, job_id, sink,
                                  visibility_timeout=cfg.worker_visibility_timeout)  # fmt: skip
        except KeyboardInterrupt:
            _cancel(app, store, job_id, task_id)
            raise
    if job.status != DONE:
        raise dispatch.job_error(job)
    return job_id, dispatch.printed_result(app, store, job, task_id)


def follow_on_workers(job: Job, sink) -> None:
    """Send a recorded job (a watched file's) to the workers and follow it into ``sink``
    until it ends; a job that did not end ``done`` raises its error. Ctrl-C stops only the
    following: the job goes on on its worker, and the watcher's next start finds it."""
    from reelforge.cli import settings
    from reelforge.cli_jobs import open_state
    from reelforge.pipeline.jobs import DONE
    from reelforge.workers import dispatch

    store, app, warned = open_state().store, _app(), False
    while True:
        try:
            dispatch.send(app, store, store.get(job.id))
            break
        except Exception as exc:  # the broker is away: a watcher waits for it to come back
            if not warned:
                err_console.print(f"[yellow]warning:[/] cannot send job {job.id} to the "
                                  f"workers ({escape(str(exc))}); trying again",
                                  highlight=False)  # fmt: skip
                warned = True
            time.sleep(SEND_RETRY_S)
    ended = dispatch.follow(store, job.id, sink,
                            visibility_timeout=settings().worker_visibility_timeout)  # fmt: skip
    if ended.status != DONE:
        raise dispatch.job_error(ended)


def _cancel(app, store, job_id: str, task_id: str) -> None:
    """Ctrl-C while following: cancel the job and wait (a little) for it to stop."""
    from reelforge.pipeline.jobs import ACTIVE
    from reelforge.workers.dispatch import revoke

    store.cancel(job_id)
    revoke(app, task_id)
    deadline = time.monotonic() + CANCEL_WAIT_S
    while time.monotonic() < deadline and store.get(job_id).status in ACTIVE:
        time.sleep(0.25)


def _done_without_report(job_id: str, output: str | Path, as_json: bool) -> None:
    """The job is done but its worker's report cannot be fetched: say where it is."""
    if as_json:
        print(json.dumps({"job": job_id, "status": "done", "output": str(output)}))
    else:
        out_console.print(f"job {job_id}: done → {escape(str(output))}", highlight=False)
    raise typer.Exit(0)


def publish_on_workers(output: str, *, as_json: bool):
    """``publish`` on the workers: ``(report, version)`` as a run here returns them."""
    from reelforge.video.report import PublishReport

    job_id, printed = run_on_workers("publish", output, json_lines=False)
    if not isinstance(printed, dict):
        _done_without_report(job_id, output, as_json)
    version = printed.pop("version", None)
    return PublishReport.model_validate(printed), version


def make_on_workers(output: str | Path, *, as_json: bool, subject: str | None):
    """``make`` on the workers: its report, as a run here returns it."""
    from reelforge.pipeline.graph import MakeReport

    job_id, printed = run_on_workers("make", output, json_lines=as_json, subject=subject)
    if not isinstance(printed, dict):
        _done_without_report(job_id, output, as_json)
    return MakeReport.model_validate(printed)


def revoke_task(job: Job) -> None:
    """``jobs cancel``: a job sent to the workers has its task revoked (when a broker is
    set); the cancel flag in the job store is what stops a running one."""
    from reelforge.cli import settings
    from reelforge.workers.lease import worker_info

    task_id = worker_info(job).get("task")
    if not task_id or not settings().broker:
        return
    from reelforge.workers.dispatch import revoke

    try:
        revoke(_app(), task_id)
    except Exception as exc:  # the cancel flag is set: that is what matters
        err_console.print(f"[yellow]warning:[/] task {task_id} not revoked ({escape(str(exc))})",
                          highlight=False)  # fmt: skip
