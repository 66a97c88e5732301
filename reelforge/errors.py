"""The few exception types users see.

Every error carries a one-line message that names the file and the problem; the CLI prints
that line and exits with :attr:`ReelforgeError.exit_code`.
"""

from __future__ import annotations

from pathlib import Path


class ReelforgeError(Exception):
    """Base of all errors ReelForge reports to users."""

    exit_code = 1

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = str(path) if path is not None else None
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class InputError(ReelforgeError):
    """The user gave something we cannot use: a missing or broken file, a bad option."""

    exit_code = 2


class MediaError(ReelforgeError):
    """A media tool (ffmpeg, a decoder) failed on input that looked valid."""

    exit_code = 1


class Cancelled(ReelforgeError):  # noqa: N818 (reads as a state, like KeyboardInterrupt)
    """The run was interrupted (Ctrl-C or SIGTERM); partial outputs were removed."""

    exit_code = 130


class BackendError(ReelforgeError):
    """A model or hosted API failed (after retries) or answered something unusable."""

    exit_code = 1


class OutputError(ReelforgeError):
    """The output cannot be written (a read-only or full disk, a path that cannot be a
    folder); the message names the output, never a temporary, and the system's reason."""

    exit_code = 1
