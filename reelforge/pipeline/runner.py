"""Running steps for a job: the step registry, :class:`Pipeline`, progress and cancelling.

Contract:

- :func:`register` names a step function ``(spec, empty output folder, progress) -> report``
  that writes its files into the folder; :func:`step_function` finds one (loading
  :mod:`reelforge.pipeline.steps`, the steps' home, on first need).
- :meth:`Pipeline.run` keys a :class:`~reelforge.pipeline.spec.StepSpec`, takes the result
  from the step cache (``cached``) or builds it with the registered function (``done``), and
  records the step in the job store; a failing step is recorded ``failed`` and its error
  raised unchanged.
- Cancelling (``JobStore.cancel``) is seen within :data:`POLL_SECONDS`: between steps, in the
  step's progress callback, and by a watcher that stops this process's ffmpeg runs (a step
  that reports no progress stops too). The run then raises :class:`JobCancelled`.
- :func:`job_run` brackets a job's run: ``running``, then ``done``, ``failed`` (with the
  error's message and code), ``cancelled``, or ``interrupted`` (Ctrl-C, SIGTERM).
- :class:`JobProgress` implements :class:`~reelforge.progress.Progress`: it records the
  step's progress in the store (at most :data:`WRITES_PER_SECOND` writes a second), and
  forwards to the terminal's bars and to a :class:`ProgressSink` (one line or bar for the
  whole job: the step, its stage, the fraction done).
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import importlib.util
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import sqlalchemy as sa

from reelforge.errors import (
    BackendError,
    Cancelled,
    InputError,
    MediaError,
    OutputError,
    ReelforgeError,
)
from reelforge.media import ffmpeg
from reelforge.pipeline.cache import StepCache, StepResult
from reelforge.pipeline.digest import DigestMemo, step_key
from reelforge.pipeline.jobs import JobStore
from reelforge.pipeline.spec import StepSpec
from reelforge.progress import NullProgress, Progress, Update

POLL_SECONDS = 0.5
WRITES_PER_SECOND = 4

StepFunction = Callable[[StepSpec, Path, Progress], dict]
_REGISTRY: dict[str, StepFunction] = {}
STEPS_MODULE = "reelforge.pipeline.steps"


def register(name: str) -> Callable[[StepFunction], StepFunction]:
    """Decorator: ``fn`` runs the steps named ``name``."""
    StepSpec(name=name, version="0")  # the same naming rule as specs

    def decorate(fn: StepFunction) -> StepFunction:
        known = _REGISTRY.get(name)
        if known is not None and known.__qualname__ != fn.__qualname__:
            raise ValueError(f"step {name!r} is already registered ({known.__module__})")
        _REGISTRY[name] = fn
        return fn

    return decorate


def step_function(name: str) -> StepFunction:
    if name not in _REGISTRY and importlib.util.find_spec(STEPS_MODULE) is not None:
        importlib.import_module(STEPS_MODULE)
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"no step named {name!r}; known: {', '.join(sorted(_REGISTRY))}") \
            from None  # fmt: skip


def registered() -> list[str]:
    return sorted(_REGISTRY)


class JobCancelled(Cancelled):
    """The job was cancelled (``reelforge jobs cancel``) and stopped."""

    code = "cancelled"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} cancelled; partial output removed")
        self.job_id = job_id


def error_code(exc: BaseException) -> str:
    """A short machine code for an error (its own ``code`` attribute if it has one)."""
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code:
        return code
    for cls, name in ((JobCancelled, "cancelled"), (Cancelled, "interrupted"),
                      (InputError, "input"), (MediaError, "media"), (BackendError, "backend"),
                      (OutputError, "output"), (ReelforgeError, "error"),
                      (KeyboardInterrupt, "interrupted"), (OSError, "os")):  # fmt: skip
        if isinstance(exc, cls):
            return name
    return "internal"


def describe(exc: BaseException) -> str:
    """One line for the store: a user error's own message, else the type and message."""
    if isinstance(exc, ReelforgeError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}".strip()


# --- progress -------------------------------------------------------------------------


class ProgressSink(Protocol):
    """Where a job's overall progress goes: one bar, JSON lines, nothing."""

    def report(self, step: str, stage: str, fraction: float) -> None:
        """``step`` is at ``fraction`` (0..1) of its current ``stage``."""
        ...


class NullSink:
    def report(self, step: str, stage: str, fraction: float) -> None:
        pass


class JsonLinesSink:
    """``{"step": ..., "stage": ..., "progress": 0.42}`` lines on ``stream`` (stdout):
    on every new step or stage, at the end of each, and at most ``per_second`` a second
    in between."""

    def __init__(self, stream: IO[str] | None = None, per_second: float = 4.0) -> None:
        self.stream = stream or sys.stdout
        self.interval = 1.0 / per_second
        self._last: tuple[str, str] | None = None
        self._last_at = 0.0
        self._lock = threading.Lock()

    def report(self, step: str, stage: str, fraction: float) -> None:
        now = time.monotonic()
        with self._lock:
            fresh = (step, stage) != self._last
            if not fresh and fraction < 1.0 and now - self._last_at < self.interval:
                return
            self._last, self._last_at = (step, stage), now
            line = {"step": step, "stage": stage, "progress": round(min(1.0, fraction), 4)}
            self.stream.write(json.dumps(line) + "\n")
            self.stream.flush()


class JobProgress:
    """:class:`~reelforge.progress.Progress` for one step of a job (see the module
    docstring); ``check`` is called on every update and raises to stop the step."""

    def __init__(self, store: JobStore | None, job_id: str, step: str, *,
                 forward: Progress | None = None, sink: ProgressSink | None = None,
                 check: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.store, self.job_id, self.step = store, job_id, step
        self.forward = forward or NullProgress()
        self.sink = sink or NullSink()
        self.check = check or (lambda: None)
        self._written_at = 0.0

    def stage(self, name: str, total: float, unit: str = "") -> Update:
        forward = self.forward.stage(name, total, unit)
        self.sink.report(self.step, name, 0.0)

        def update(completed: float) -> None:
            self.check()
            forward(completed)
            fraction = 1.0 if total <= 0 else max(0.0, min(1.0, completed / total))
            self.sink.report(self.step, name, fraction)
            now = time.monotonic()
            due = fraction >= 1.0 or now - self._written_at >= 1 / WRITES_PER_SECOND
            if self.store is not None and due:
                self._written_at = now
                with contextlib.suppress(sa.exc.SQLAlchemyError):  # not worth failing a step
                    self.store.step_progress(self.job_id, self.step, fraction, stage=name)

        return update


# --- cancelling -----------------------------------------------------------------------


class CancelWatch:
    """Polls the store's cancel flag on a thread while a step runs; when it is set, stops
    this process's ffmpeg runs (their callers fail) and makes :meth:`check` raise."""

    def __init__(self, store: JobStore, job_id: str, poll: float = POLL_SECONDS) -> None:
        self.store, self.job_id, self.poll = store, job_id, poll
        self.flag = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def is_set(self) -> bool:
        return self.flag.is_set()

    def check(self) -> None:
        if self.flag.is_set():
            raise JobCancelled(self.job_id)

    def poll_now(self) -> None:
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            if self.store.cancelled(self.job_id):
                self.flag.set()

    def __enter__(self) -> CancelWatch:
        self.poll_now()
        self.check()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="cancel-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll):
            self.poll_now()
            if self.flag.is_set():
                ffmpeg.request_stop()
                return


def _as_cancelled(watch: CancelWatch, exc: BaseException) -> BaseException:
    """A step that failed because the job was cancelled (its ffmpeg stopped) reads as
    cancelled; anything else stays what it was."""
    if isinstance(exc, JobCancelled) or not watch.is_set():
        return exc
    return JobCancelled(watch.job_id)


# --- a job's run ----------------------------------------------------------------------


@contextlib.contextmanager
def job_run(store: JobStore, job_id: str) -> Iterator[None]:
    """Mark the job running; at the end ``done``, ``failed``, ``cancelled`` or
    ``interrupted`` according to how the block ended (the exception is re-raised)."""
    store.start(job_id)
    try:
        yield
    except BaseException as exc:
        with contextlib.suppress(sa.exc.SQLAlchemyError):  # the first error is the one to see
            if isinstance(exc, JobCancelled):
                store.mark_cancelled(job_id)
            elif isinstance(exc, KeyboardInterrupt | Cancelled):
                store.interrupt(job_id)
            else:
                store.fail(job_id, describe(exc), error_code(exc))
        raise
    store.finish(job_id)


class Pipeline:
    """One job's run, in-process: see the module docstring."""

    def __init__(self, store: JobStore, cache: StepCache, job_id: str,
                 progress: Progress | None = None, *, sink: ProgressSink | None = None,
                 digests: DigestMemo | None = None) -> None:  # fmt: skip
        self.store, self.cache, self.job_id = store, cache, job_id
        self.progress, self.sink, self.digests = progress, sink or NullSink(), digests
        self._outcomes: list[dict] = []
        self._watch = CancelWatch(store, job_id)

    def key(self, spec: StepSpec) -> str:
        return step_key(spec, self.digests)

    def check_cancelled(self) -> None:
        self._watch.poll_now()
        self._watch.check()

    def run(self, spec: StepSpec) -> StepResult:
        self.check_cancelled()
        key = self.key(spec)
        found = self.cache.lookup(key)
        if found is not None:
            self.store.step_finished(self.job_id, spec.name, key, "cached", found.seconds)
            self.sink.report(spec.name, "cached", 1.0)
            return self._outcome(found)
        fn = step_function(spec.name)
        self.store.step_started(self.job_id, spec.name, key)
        progress = JobProgress(self.store, self.job_id, spec.name, forward=self.progress,
                               sink=self.sink, check=self._watch.check)  # fmt: skip
        try:
            with self._watch:
                result = self.cache.build(key, spec.name, lambda tmp: fn(spec, tmp, progress))
        except BaseException as exc:
            final = _as_cancelled(self._watch, exc)
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                self.store.step_failed(self.job_id, spec.name, key, describe(final))
            if final is exc:
                raise
            raise final from exc
        status = "cached" if result.cached else "done"
        self.store.step_finished(self.job_id, spec.name, key, status, result.seconds)
        self.sink.report(spec.name, status, 1.0)
        return self._outcome(result)

    def _outcome(self, result: StepResult) -> StepResult:
        self._outcomes.append({"step": result.name, "key": result.key,
                               "status": "cached" if result.cached else "done",
                               "seconds": round(result.seconds, 3)})  # fmt: skip
        return result

    def outcomes(self) -> list[dict]:
        """``[{"step", "key", "status": "done"|"cached", "seconds"}]`` in run order."""
        return [dict(o) for o in self._outcomes]


# --- the state folder and recorded commands --------------------------------------------


@dataclass
class State:
    """The job store, the step cache and the digest memo that one configuration names."""

    store: JobStore
    cache: StepCache
    digests: DigestMemo

    @classmethod
    def open(cls, config) -> State:
        """From a :class:`reelforge.config.Config` (its ``state_dir``, ``cache_dir``,
        ``jobs_url``)."""
        config.state_dir.mkdir(parents=True, exist_ok=True)
        return cls(store=JobStore(config.jobs_store_url),
                   cache=StepCache(config.step_cache_dir),
                   digests=DigestMemo(config.digests_path))  # fmt: skip

    def pipeline(self, job_id: str, progress: Progress | None = None, *,
                 sink: ProgressSink | None = None) -> Pipeline:  # fmt: skip
        return Pipeline(self.store, self.cache, job_id, progress, sink=sink,
                        digests=self.digests)  # fmt: skip

    def close(self) -> None:
        self.store.close()
        self.digests.close()


_resuming: contextvars.ContextVar[str | None] = contextvars.ContextVar("resuming", default=None)
_reporting: contextvars.ContextVar[ProgressSink | None] = contextvars.ContextVar(
    "reporting", default=None
)


@contextlib.contextmanager
def reporting(sink: ProgressSink) -> Iterator[None]:
    """Within the block, recorded steps that were given no sink report to ``sink`` (a
    watcher shows the progress of the publishes it starts)."""
    token = _reporting.set(sink)
    try:
        yield
    finally:
        _reporting.reset(token)


@contextlib.contextmanager
def resuming(job_id: str) -> Iterator[None]:
    """Within the block, :func:`job_for` reuses ``job_id`` instead of creating a job: a
    retry reruns the job's command under its own id."""
    token = _resuming.set(job_id)
    try:
        yield
    finally:
        _resuming.reset(token)


def job_for(store: JobStore, kind: str, args: dict, output: str, *,
            subject: str | None = None) -> str:  # fmt: skip
    """The job this run records into: the one being retried, or a new one."""
    job_id = _resuming.get()
    if job_id is None:
        return store.create(kind, args, output, subject=subject)
    _resuming.set(None)  # only the outermost command resumes it
    job = store.get(job_id)
    if job.kind != kind:
        raise InputError(f"job {job_id} is a {job.kind} job, not {kind}")
    return job_id


@contextlib.contextmanager
def recorded_step(state: State, job_id: str, spec: StepSpec,
                  progress: Progress | None = None, *,
                  sink: ProgressSink | None = None) -> Iterator[Progress]:  # fmt: skip
    """Run the block as the job's step ``spec`` (not cached: it writes the user's output),
    recorded ``running`` then ``done`` or ``failed``; yields the step's progress, which
    honours the cancel flag. The key is computed from the inputs as they are; one that
    cannot be (a missing input, a folder) is left empty for the step's own error to explain."""
    plain = all(Path(p).is_file() for p in spec.inputs.values())  # a folder is not read here
    try:
        key = step_key(spec, state.digests) if plain else ""
    except (ReelforgeError, OSError):
        key = ""
    started = time.monotonic()
    state.store.step_started(job_id, spec.name, key)
    sink = sink or _reporting.get()
    watch = CancelWatch(state.store, job_id)
    step_progress = JobProgress(state.store, job_id, spec.name, forward=progress, sink=sink,
                                check=watch.check)  # fmt: skip
    try:
        with watch:
            yield step_progress
    except BaseException as exc:
        final = _as_cancelled(watch, exc)
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            state.store.step_failed(job_id, spec.name, key, describe(final))
        if final is exc:
            raise
        raise final from exc
    state.store.step_finished(job_id, spec.name, key, "done", time.monotonic() - started)
