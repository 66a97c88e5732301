"""Run the ffmpeg binary shipped by the ``imageio-ffmpeg`` wheel.

Contract: callers pass argument lists (never shell strings). :func:`run` streams
``-progress pipe:1`` output into a callback as seconds of output produced, and raises
:class:`~reelforge.errors.MediaError` naming the input and quoting the tail of stderr when
ffmpeg fails. An interrupted run (KeyboardInterrupt) stops ffmpeg before re-raising.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from pathlib import Path

from reelforge.errors import MediaError

ProgressCallback = Callable[[float], None]
"""Receives the number of seconds of media written so far."""

STDERR_TAIL_LINES = 8


@cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary: ``REELFORGE_FFMPEG`` if set, else the imageio-ffmpeg one."""
    override = os.environ.get("REELFORGE_FFMPEG")
    if override:
        return override
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
    proc = subprocess.Popen(
        cmd, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, cwd=cwd,
        start_new_session=True,
    )  # fmt: skip
    err_thread = threading.Thread(target=_reader, args=(proc.stderr, tail), daemon=True)
    err_thread.start()
    try:
        feed(proc)
        proc.wait()
    except BaseException:
        _stop(proc)
        raise
    finally:
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


def run_with_frames(args: Sequence[str], frames: Iterable[bytes], *, subject: str | Path) -> None:
    """Run ``ffmpeg <args>`` feeding raw video ``frames`` (bytes objects) on its stdin.

    ``args`` must read ``-i pipe:0`` with a rawvideo format. Raises like :func:`run`.
    """

    def feed(proc: subprocess.Popen) -> None:
        assert proc.stdin is not None
        try:
            for frame in frames:
                proc.stdin.write(frame)
        except BrokenPipeError:
            pass  # ffmpeg stopped reading; its exit status tells why
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()

    cmd = [*_base_command(), *map(str, args)]
    _execute(cmd, subject, feed=feed, stdin=subprocess.PIPE)


def _stop(proc: subprocess.Popen) -> None:
    """Ask ffmpeg to quit, then kill it if it does not."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _failure_message(code: int, tail: collections.deque[str]) -> str:
    lines = [line for line in tail if line.strip()][-STDERR_TAIL_LINES:]
    quoted = " | ".join(lines) if lines else "no error output"
    return f"ffmpeg failed (exit {code}): {quoted}"
