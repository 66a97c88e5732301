"""A job's recorded command as a child process: the one place that starts and stops one.

Contract: :func:`job_command` is the command that runs a job as it stands: ``reelforge
jobs run ID`` for a queued job, ``jobs retry ID`` for a failed, interrupted or cancelled one
(it resumes at its failed step: finished steps come from the step cache), ``None`` for one
that is running or done. :class:`JobProcess` runs it in a session of its own, so a signal to
its group reaches the command and nothing else (the command stops its own ffmpeg runs on
SIGTERM), keeps the last lines of its stderr (and, when asked, all of its stdout), and stops
it: :meth:`JobProcess.interrupt` sends SIGTERM (the job ends ``interrupted`` and can be
resumed), :meth:`JobProcess.stop` sends SIGTERM, then SIGKILL after :data:`STOP_GRACE_S`,
and waits. With ``die_with_parent`` (Linux) the command gets SIGTERM when the thread that
started it ends, so a runner killed outright never leaves its job running unattended.
:func:`interrupt_all` sends SIGTERM to every job process this process runs; it only sends
signals, so a signal handler may call it.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from reelforge.pipeline.jobs import QUEUED, RETRYABLE, Job

STOP_GRACE_S = 5.0  # how long a job's command may take to clean up after SIGTERM
TAIL_LINES = 20
_PR_SET_PDEATHSIG = 1

_running: set[JobProcess] = set()  # this process's job processes (for interrupt_all)


def job_command(job: Job, *, as_json: bool = True) -> list[str] | None:
    """The command that runs ``job`` from where it stands (see the module docstring)."""
    verb = "run" if job.status == QUEUED else "retry" if job.status in RETRYABLE else None
    if verb is None:
        return None
    return [sys.executable, "-m", "reelforge.cli", "jobs", verb, job.id,
            *(["--json"] if as_json else [])]  # fmt: skip


def last_error_line(lines: list[str]) -> str:
    """The last line of a command's stderr that says what went wrong (no traceback frames,
    no ``error:`` prefix); empty when there is none."""
    for line in reversed(lines):
        line = line.strip()
        if line and not line.startswith(("Traceback", "  ")):
            return line.removeprefix("error: ")
    return ""


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks Linux to send SIGTERM to the child when its parent thread
    ends (and ends the child at once if the parent is already gone); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def arm() -> None:  # runs in the child between fork and exec: calls only, no imports
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


class JobProcess:
    """A job's command running in a session of its own (see the module docstring)."""

    def __init__(self, command: list[str], *, cwd: str | Path | None = None,
                 env: Mapping[str, str] | None = None, capture_stdout: bool = False,
                 die_with_parent: bool = False) -> None:  # fmt: skip
        self.command = command
        self._stderr: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._stdout: list[str] = []
        self.proc = subprocess.Popen(
            command, cwd=cwd, env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture_stdout else subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True,
            preexec_fn=_parent_death_signal() if die_with_parent else None,
        )  # fmt: skip
        pipes = [(self._stderr, self.proc.stderr)]
        if capture_stdout:
            pipes.append((self._stdout, self.proc.stdout))
        self._readers = [threading.Thread(target=sink.extend, args=(pipe,), daemon=True)
                         for sink, pipe in pipes]  # fmt: skip
        for reader in self._readers:
            reader.start()
        _running.add(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def poll(self) -> int | None:
        """The exit status, or None while it runs."""
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self.proc.wait(timeout)

    def tail(self) -> list[str]:
        """The last lines of its stderr (all of them once it has ended and :meth:`close`
        has been called)."""
        return list(self._stderr)

    def stdout(self) -> str:
        """What it printed (with ``capture_stdout``; complete after :meth:`close`)."""
        return "".join(self._stdout)

    def interrupt(self) -> None:
        """SIGTERM to its group: the command stops its work and ends ``interrupted``."""
        self._signal(signal.SIGTERM)

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """SIGTERM, then SIGKILL if it is still there after ``grace`` seconds; waits."""
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.proc.wait()

    def close(self) -> None:
        """Stop it if it still runs, and collect what it wrote."""
        if self.proc.poll() is None:
            self.stop()
        for reader in self._readers:
            reader.join(timeout=2)
        _running.discard(self)

    def __enter__(self) -> JobProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _signal(self, sig: int) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)


def interrupt_all() -> None:
    """SIGTERM to every job process this process runs (safe in a signal handler)."""
    for job_process in tuple(_running):
        job_process.interrupt()
