"""Run the ffmpeg binary shipped by the ``imageio-ffmpeg`` wheel (or the one the edge names).

Contract: :func:`use_binary` (called once by the CLI, from the settings' ``ffmpeg``) picks
another binary for the whole process. Callers pass argument lists (never shell strings).
:func:`run` streams ``-progress pipe:1`` output into a callback as seconds of output
produced, and raises :class:`~reelforge.errors.MediaError` naming the input and quoting the
tail of stderr when ffmpeg fails. An interrupted run (KeyboardInterrupt, or any exception
raised while ffmpeg runs) stops ffmpeg before re-raising: SIGTERM, then SIGKILL if it has
not exited within :data:`STOP_GRACE` seconds (on SIGTERM ffmpeg flushes its encoders, which
for a slow preset takes seconds), and waits for it, so no ffmpeg outlives the call.

For a whole process being told to stop: :func:`request_stop` (safe in a signal handler: it
only sends signals) stops every ffmpeg this process runs, in any thread, within
:data:`STOP_GRACE` seconds, and their callers see them fail; :func:`stop_all` does the same
and also waits for them (call it outside signal handlers, before the process exits). A
worker process that its parent may terminate calls :func:`install_worker_stop` first: its
ffmpeg runs then die with it.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from pathlib import Path

from reelforge.errors import MediaError

ProgressCallback = Callable[[float], None]
"""Receives the number of seconds of media written so far."""

STDERR_TAIL_LINES = 8
STOP_GRACE = 0.3  # seconds ffmpeg may take to exit on SIGTERM before it is killed

_running: set[subprocess.Popen] = set()
_running_lock = threading.RLock()  # re-entrant: request_stop runs in signal handlers
_kill_due = threading.Event()  # set by request_stop: the reaper kills survivors after grace
_reaper: threading.Thread | None = None


_binary: str | None = None  # set by use_binary


def use_binary(path: str | Path | None) -> None:
    """Run ``path`` as ffmpeg from now on, in this process and the workers it forks
    (``None``: the imageio-ffmpeg binary). Call it before the first run."""
    global _binary
    _binary = str(path) if path else None


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary: the one :func:`use_binary` named, else imageio-ffmpeg's."""
    return _binary or _bundled_exe()


@cache
def _bundled_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _reader(stream, sink: collections.deque[str]) -> None:
    for raw in iter(stream.readline, b""):
        sink.append(raw.decode("utf-8", "replace").rstrip())
    stream.close()


def _execute(
    cmd: list[str],
    subject: str | Path,
    *,
    feed: Callable[[subprocess.Popen], None],
    stdin: int | None = None,
    stdout: int = subprocess.DEVNULL,
    cwd: str | Path | None = None,
) -> None:
    """Start ffmpeg in its own session (Ctrl-C reaches us and we stop it), keep the tail of
    its stderr, let ``feed`` talk to it, wait, and raise :class:`MediaError` on failure."""
    tail: collections.deque[str] = collections.deque(maxlen=200)
    _start_reaper()
    with _running_lock:
        proc = subprocess.Popen(
            cmd, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, cwd=cwd,
            start_new_session=True,
        )  # fmt: skip
        _running.add(proc)
    err_thread = threading.Thread(target=_reader, args=(proc.stderr, tail), daemon=True)
    err_thread.start()
    try:
        feed(proc)
        proc.wait()
    except BaseException:
        _stop([proc])
        raise
    finally:
        with _running_lock:
            _running.discard(proc)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        err_thread.join(timeout=5)
    if proc.returncode != 0:
        raise MediaError(_failure_message(proc.returncode, tail), path=subject)


def _base_command() -> list[str]:
    return [ffmpeg_exe(), "-hide_banner", "-y", "-loglevel", "error"]


def run(
    args: Sequence[str],
    *,
    subject: str | Path,
    on_progress: ProgressCallback | None = None,
    cwd: str | Path | None = None,
) -> None:
    """Run ``ffmpeg <args>`` to completion.

    ``subject`` names what the command works on (usually the input file) for error messages.
    With ``on_progress``, ffmpeg's ``-progress pipe:1`` key=value stream is parsed and the
    callback receives ``out_time`` in seconds as it advances.
    """
    cmd = [*_base_command(), "-nostdin"]
    if on_progress is not None:
        cmd += ["-progress", "pipe:1", "-nostats"]
    cmd += [str(a) for a in args]

    def feed(proc: subprocess.Popen) -> None:
        if on_progress is None or proc.stdout is None:
            return
        for raw in iter(proc.stdout.readline, b""):
            key, _, value = raw.decode("ascii", "replace").strip().partition("=")
            if key == "out_time_us" and value.lstrip("-").isdigit():
                on_progress(max(0.0, int(value) / 1e6))

    _execute(cmd, subject, feed=feed, stdout=subprocess.PIPE if on_progress else subprocess.DEVNULL,
             cwd=cwd)  # fmt: skip


def capture(args: Sequence[str], *, subject: str | Path) -> bytes:
    """Run ``ffmpeg <args>``, which must write to ``pipe:1``, and return what it wrote.
    Raises like :func:`run`."""
    written: list[bytes] = []

    def feed(proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        written.append(proc.stdout.read())

    cmd = [*_base_command(), "-nostdin", *map(str, args)]
    _execute(cmd, subject, feed=feed, stdout=subprocess.PIPE)
    return b"".join(written)


def run_with_frames(args: Sequence[str], frames: Iterable[bytes], *, subject: str | Path) -> None:
    """Run ``ffmpeg <args>`` feeding raw video ``frames`` (bytes objects) on its stdin.

    ``args`` must read ``-i pipe:0`` with a rawvideo format. Raises like :func:`run`.
    """

    def feed(proc: subprocess.Popen) -> None:
        assert proc.stdin is not None
        try:
            for frame in frames:
                proc.stdin.write(frame)
            proc.stdin.close()  # on failure or interruption ffmpeg is stopped first
        except BrokenPipeError:
            pass  # ffmpeg stopped reading; its exit status tells why

    cmd = [*_base_command(), *map(str, args)]
    _execute(cmd, subject, feed=feed, stdin=subprocess.PIPE)


def request_stop() -> None:
    """Ask every running ffmpeg to quit now and have the survivors killed after
    :data:`STOP_GRACE` seconds. Sends signals only (no waiting, no locks another frame of
    this thread could hold), so a signal handler may call it."""
    with _running_lock:
        procs = list(_running)
    for proc in procs:
        _signal(proc, signal.SIGTERM)
    if procs:
        _kill_due.set()


def stop_all() -> None:
    """Stop every ffmpeg this process is running (in any thread) within about
    :data:`STOP_GRACE` seconds and wait until they are gone. Their callers see them fail."""
    with _running_lock:
        procs = list(_running)
    _stop(procs)


def install_worker_stop() -> None:
    """For a pool worker process (its initializer): SIGTERM from the parent kills this
    worker's ffmpeg runs and ends the worker at once, without a traceback; SIGINT (a
    terminal's Ctrl-C reaches the whole process group) is left to the parent, which stops
    its workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _end_worker)


def _end_worker(signum, frame) -> None:
    with _running_lock:
        procs = list(_running)
    for proc in procs:
        _signal(proc, signal.SIGKILL)
    for proc in procs:  # reaped here: orphaned, they would linger as zombies until init's turn
        with contextlib.suppress(OSError):
            os.waitpid(proc.pid, 0)
    os._exit(128 + signum)


def _forget_parent_runs() -> None:
    """In a forked child: the parent's ffmpeg runs and reaper thread are not ours."""
    global _running_lock, _kill_due, _reaper
    _running.clear()
    _running_lock = threading.RLock()
    _kill_due = threading.Event()
    _reaper = None


os.register_at_fork(after_in_child=_forget_parent_runs)


def _start_reaper() -> None:
    """The thread that carries out :func:`request_stop`'s kills (started once, before the
    first ffmpeg, so that a signal handler never has to start a thread)."""
    global _reaper
    with _running_lock:
        if _reaper is None:
            _reaper = threading.Thread(target=_reap, name="ffmpeg-reaper", daemon=True)
            _reaper.start()


def _reap() -> None:
    while True:
        _kill_due.wait()
        time.sleep(STOP_GRACE)
        _kill_due.clear()
        with _running_lock:
            procs = list(_running)
        for proc in procs:
            _signal(proc, signal.SIGKILL)  # their owners reap them


def _signal(proc: subprocess.Popen, sig: int) -> None:
    """Send ``sig`` to ffmpeg's session (ffmpeg and anything it started), if still there."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


def _stop(procs: list[subprocess.Popen]) -> None:
    """Ask each ffmpeg (and anything it started: its session) to quit, kill those that have
    not within :data:`STOP_GRACE` seconds, and wait for them all."""
    live = [p for p in procs if p.poll() is None]
    for proc in live:
        _signal(proc, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for proc in live:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal(proc, signal.SIGKILL)
            proc.wait()


def _failure_message(code: int, tail: collections.deque[str]) -> str:
    lines = [line for line in tail if line.strip()][-STDERR_TAIL_LINES:]
    quoted = " | ".join(lines) if lines else "no error output"
    return f"ffmpeg failed (exit {code}): {quoted}"
