"""The Celery app built from the settings, its queues, and the worker's signal policy.

Contract: :func:`create_app` returns a Celery app on ``config.broker`` (the broker and the
result backend; Redis) that carries the settings it was built from (``app.settings``) and
knows the tasks of :mod:`reelforge.workers.tasks`:

- tasks are acknowledged late and rejected when their worker is lost, so a job whose worker
  dies before the job ends is delivered again: at once when a pool process dies, and after
  the visibility timeout (``config.worker_visibility_timeout``) when the whole worker is
  gone, since Redis only gives an unacknowledged message to another worker once it is that
  old (every worker sweeps for such messages every ``min(10, timeout / 4)`` seconds). A job
  that runs longer than the timeout is delivered a second time; that delivery watches the
  running job and takes over only if it stops (see :mod:`reelforge.workers.tasks`);
- each worker process reserves one task at a time (prefetch 1): a long job never holds
  another back while a free worker waits;
- JSON only, for messages and results;
- the tasks: ``reelforge.run_job`` (:mod:`reelforge.workers.tasks`) and
  ``reelforge.encode_chunk`` (:mod:`reelforge.workers.chunks`);
- three queues, :data:`QUEUES`: ``cpu`` (ffmpeg and CPU models: publish, images, make),
  ``gpu`` (steps that want a GPU: local voice and lip-sync models) and ``io`` (steps that
  mostly wait on a hosted API); :func:`reelforge.workers.dispatch.queue_for` chooses;
- tasks keep running when the broker connection drops (the job store, not the broker, is
  the record of a job; a delivery repeated after a reconnection finds the job running or
  done and does nothing twice).

Signal policy (:func:`install_signal_policy`, called as a worker starts): SIGTERM, or Ctrl-C
(Celery's warm shutdown), stops the running jobs at once instead of waiting for them: each
job process of the worker gets SIGTERM (the command stops its ffmpeg runs, removes partial
output and marks the job ``interrupted``), and each task hands its message back to the
queue, so another worker resumes the job from its failed step. A prefork worker's main
process passes the signal on to its pool processes, which pass it to their job processes.
:data:`STOPPING` is set in a process once its worker stops.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

from celery import Celery, signals
from kombu import Queue

from reelforge.config import Config
from reelforge.media import ffmpeg
from reelforge.workers import local

QUEUES = ("cpu", "gpu", "io")
STOPPING = threading.Event()


class ReelforgeCelery(Celery):
    """A Celery app that carries the ReelForge settings it was built from."""

    settings: Config


def create_app(config: Config) -> ReelforgeCelery:
    """The app for ``config.broker`` (see the module docstring)."""
    if not config.broker:
        from reelforge.errors import InputError

        raise InputError("no broker: set REELFORGE_BROKER (e.g. redis://127.0.0.1:6379/0)")
    timeout = config.worker_visibility_timeout
    app = ReelforgeCelery("reelforge", broker=config.broker, backend=config.broker,
                          set_as_current=True)  # fmt: skip
    app.settings = config
    transport = {
        "visibility_timeout": timeout,
        "unacked_restore_interval": max(1.0, min(10.0, timeout / 4)),
        "unacked_restore_throttle": 1,  # every sweep looks (the interval alone sets the pace)
    }
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        task_queues=[Queue(name, routing_key=name) for name in QUEUES],
        task_default_queue="cpu",
        task_create_missing_queues=False,
        broker_transport_options=transport,
        result_backend_transport_options={"visibility_timeout": timeout},
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits for its broker to come back
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_redirect_stdouts=False,
        worker_hijack_root_logger=False,
        result_expires=7 * 86400,
    )
    from reelforge.workers import chunks, tasks  # noqa: F401 (they register their tasks)

    return app


def install_signal_policy(worker) -> None:
    """The signal policy of the module docstring for ``worker`` (a Celery ``WorkController``
    about to start in this process)."""
    main = os.getpid()

    def stop_here(signum=None, frame=None) -> None:  # signal-safe: flags and signals only
        STOPPING.set()
        local.interrupt_all()
        ffmpeg.request_stop()

    def before_task(**_) -> None:
        # billiard sets its own SIGTERM handler in a pool process after its initialisers
        # (it exits the process at once): ours goes in as the first task starts. A pool
        # process may get SIGTERM twice (from a service manager and from its main process);
        # it stops its job either way, and it dies with its main process (Celery's
        # parent-death signal), so it never outlives a worker that is killed outright.
        if os.getpid() != main:
            STOPPING.clear()  # a stopping worker gives its pool processes no new task
            if signal.getsignal(signal.SIGTERM) is not stop_here:
                signal.signal(signal.SIGTERM, stop_here)

    def shutting_down(**_) -> None:
        stop_here()
        pool = getattr(worker, "pool", None)
        pids = []
        with contextlib.suppress(Exception):  # a solo pool has no processes of its own
            pids = list(pool.info.get("processes", [])) if pool is not None else []
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)

    signals.task_prerun.connect(before_task, weak=False, dispatch_uid="reelforge-prerun")
    signals.worker_shutting_down.connect(shutting_down, weak=False,
                                         dispatch_uid="reelforge-shutting-down")  # fmt: skip
