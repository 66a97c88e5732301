"""The embedded worker pool: runs queued videos' jobs, one child process each.

Contract: :meth:`JobPool.submit` queues a video; ``workers`` threads each take one, run its
job as ``reelforge jobs run ID`` (or ``jobs retry ID`` for one interrupted by a restart) in
a child process of its own session, and follow it through the job store four times a
second: status, the current step, progress to playable (0..1), ``ready`` the moment the
stream's master playlist is in place. A job's process is its own, so a failing or
crashing job never takes the service down and cancelling kills exactly its process group.
On start, videos left ``waiting`` or ``processing`` by a previous run are queued again and
resume from their last finished step. ``on_change(video, event)`` is called (from a pool
thread) on ``ready`` and ``errored``.

With a broker in the settings (``REELFORGE_BROKER``) the one thing that changes is how a
job starts (:meth:`JobPool._start`): it is sent to the Celery workers
(:mod:`reelforge.workers.dispatch`) instead of run here, and followed the same way; the
pool then follows up to :data:`CELERY_FOLLOWERS` jobs at once (how many run at once is the
workers' business), and stopping the service leaves them running on their workers.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from reelforge import config
from reelforge.pipeline.jobs import QUEUED, RUNNING, Job, JobStore
from reelforge.web.settings import WebSettings
from reelforge.web.videos import ERRORED, PROCESSING, READY, Video, VideoStore
from reelforge.workers.local import STOP_GRACE_S, JobProcess, job_command, last_error_line

POLL_S = 0.25
CELERY_FOLLOWERS = 16
# publish's stages, as spans of the way to playable (extras come after it)
STAGE_SPANS = {
    "per-title analysis": (0.0, 0.1),
    "loudness": (0.0, 0.05),
    "encode": (0.05, 0.9),
    "package": (0.9, 0.99),
}
log = logging.getLogger("reelforge.web")


def publish_progress(job: Job) -> float:
    """How far a publish job is on its way to playable."""
    for step in reversed(job.current_steps()):
        if step.status in ("done", "cached"):
            return 1.0
        span = STAGE_SPANS.get(step.stage or "")
        if span is not None:
            return span[0] + (span[1] - span[0]) * (step.progress or 0.0)
    return 0.0


def make_progress(job: Job, planned: int | None) -> float:
    """How far a make job is: finished steps (and the running one's share) of those planned."""
    steps = job.current_steps()
    done = sum(1 for s in steps if s.status in ("done", "cached"))
    running = next((s.progress or 0.0 for s in steps if s.status == "running"), 0.0)
    total = max(planned or 0, done + 1)
    return min(0.99, (done + running) / total)


class Run(Protocol):
    """A started job as the pool follows it: a local process or a task on the workers."""

    returncode: int | None

    def poll(self) -> int | None: ...  # None while it runs
    def interrupt(self) -> None: ...  # the service stops (locally: SIGTERM, it resumes later)
    def stop(self) -> None: ...  # stop it for good and wait
    def tail(self) -> list[str]: ...  # the last lines of its stderr
    def close(self) -> None: ...


class JobPool:
    def __init__(self, settings: WebSettings, videos: VideoStore, jobs: JobStore, *,
                 environ: Mapping[str, str],
                 on_change: Callable[[Video, str], None]) -> None:  # fmt: skip
        self.settings, self.videos, self.jobs = settings, videos, jobs
        self.environ = settings.child_environment(environ)
        self.on_change = on_change
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._running: dict[str, Run] = {}
        cfg = config.load(self.environ)
        self._celery = None
        if cfg.broker:
            from reelforge.workers.celery import create_app

            self._celery = create_app(cfg)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- control ------------------------------------------------------------------------

    def start(self) -> None:
        self.jobs.recover()
        for video in self.videos.open_videos():
            self._queue.put(video.id)
        count = self.settings.workers
        if self._celery is not None:
            count = max(count, CELERY_FOLLOWERS)
        for n in range(count):
            thread = threading.Thread(target=self._work, name=f"pool-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, video_id: str) -> None:
        self._queue.put(video_id)

    def cancel(self, video: Video) -> None:
        """Stop ``video``'s job if it runs (its process group gets SIGTERM, then SIGKILL)."""
        if video.job_id is not None:
            with contextlib.suppress(Exception):
                self.jobs.cancel(video.job_id)
        with self._lock:
            run = self._running.get(video.id)
        if run is not None:
            run.stop()

    def stop(self) -> None:
        """Stop taking work; running jobs are interrupted (they resume on the next start)."""
        self._stopping.set()
        for _ in self._threads:
            self._queue.put(None)
        with self._lock:
            runs = list(self._running.values())
        for run in runs:
            run.interrupt()
        if self._celery is None:
            for run in runs:
                run.stop()
        for thread in self._threads:
            thread.join(timeout=STOP_GRACE_S + 2)

    # --- work ---------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stopping.is_set():
            video_id = self._queue.get()
            if video_id is None:
                return
            try:
                self._run(video_id)
            except Exception:  # a bug here must not end the pool
                log.exception("running video %s failed", video_id)

    def _start(self, job: Job) -> Run | None:
        """Start ``job``: its command as a child process here, or, with a broker, a task
        on the workers (sent again until the broker takes it). None: nothing to start (it
        runs elsewhere, or has ended)."""
        if self._celery is None:
            command = job_command(job)
            if command is None:
                return None
            return JobProcess(command, cwd=self.settings.data, env=self.environ)
        from reelforge.workers.dispatch import start

        while not self._stopping.is_set():
            try:
                return start(self._celery, self.jobs, job)
            except Exception as exc:  # the broker is away: try again
                log.warning("could not send job %s to the workers (%s)", job.id, exc)
                self._stopping.wait(2.0)
        return None

    def _run(self, video_id: str) -> None:
        video = self.videos.find(video_id)
        if video is None or video.status not in (PROCESSING, "waiting") or not video.job_id:
            return
        job = self.jobs.get(video.job_id)
        if job.cancel_requested:
            return
        proc = self._start(job)
        if proc is None:  # running elsewhere or done: follow it to its end
            self._follow(video, None)
            return
        with self._lock:
            self._running[video.id] = proc
        try:
            self._follow(video, proc)
        finally:
            with self._lock:
                self._running.pop(video.id, None)
            proc.close()
        self._finish(video.id, proc.returncode, proc.tail())

    def _follow(self, video: Video, proc: Run | None) -> None:
        """Mirror the job into the video row until the process (or the job) ends."""
        planned = video.options.get("planned_steps")
        progress, step, ready = video.progress, video.step, video.status == READY
        while True:
            ended = proc.poll() is not None if proc is not None else False
            current = self.videos.find(video.id)
            if current is None:  # deleted
                if proc is not None:
                    proc.stop()
                return
            job = self.jobs.get(video.job_id)
            values: dict = {}
            if job.status == RUNNING and current.status == "waiting":
                values["status"] = PROCESSING
            if not ready:
                share = (publish_progress(job) if video.kind == "video"
                         else make_progress(job, planned))  # fmt: skip
                if share > progress + 0.001:
                    progress = values["progress"] = share
                running = [s for s in job.current_steps() if s.status == "running"]
                now_step = running[-1].name if running else step
                if now_step != step:
                    step = values["step"] = now_step
                if self.videos.master(current) is not None:
                    ready = True
                    values.update(status=READY, progress=1.0, ready_at=time.time())
            if values:
                self.videos.update(video.id, **values)
                if values.get("status") == READY:
                    self.on_change(self.videos.get(video.id), "video.ready")
            if ended or (proc is None and job.status not in (QUEUED, RUNNING)):
                return
            time.sleep(POLL_S)

    def _finish(self, video_id: str, returncode: int | None, stderr: list[str]) -> None:
        video = self.videos.find(video_id)
        if video is None or video.status == READY or self._stopping.is_set():
            if video is not None and video.status == READY and returncode == 0:
                self.videos.update(video_id, step=None)
            return
        job = self.jobs.get(video.job_id)
        if returncode == 0 and self.videos.master(video) is not None:
            self.videos.update(video_id, status=READY, progress=1.0, ready_at=time.time(),
                               step=None)  # fmt: skip
            self.on_change(self.videos.get(video_id), "video.ready")
            return
        if job.cancel_requested:
            code, message = "cancelled", "cancelled"
        else:
            code = job.error_code or "error"
            message = job.error or last_error_line(stderr) or _ended(returncode)
        self.videos.update(video_id, status=ERRORED, error_code=code, error_message=message)
        if code in ("input", "media"):  # its input can never work: keep nothing of it
            self.videos.remove_files(video)
        self.on_change(self.videos.get(video_id), "video.errored")


def _ended(returncode: int | None) -> str:
    """How a job's process ended, in words (``killed by SIGKILL``)."""
    if returncode is not None and returncode < 0:
        try:
            return f"its process was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            pass
    return f"its process ended with status {returncode}"
