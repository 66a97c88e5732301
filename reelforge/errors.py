"""The few exception types users see.

Every error carries a one-line message that names the file and the problem; the CLI prints
that line and exits with :attr:`ReelforgeError.exit_code`. Each also carries a machine
``code`` (``input``, ``media``, ``backend``, ``output``, ``interrupted``; a raise site may
name a finer one, such as ``port-in-use``), the ``option`` it concerns (``--port``) when
there is one, and the ``http_status`` a web layer answers with, so no caller parses
messages. :meth:`ReelforgeError.as_dict` is the JSON form.
"""

from __future__ import annotations

from pathlib import Path


class ReelforgeError(Exception):
    """Base of all errors ReelForge reports to users."""

    exit_code = 1
    code = "error"
    http_status = 500

    def __init__(self, message: str, *, path: str | Path | None = None,
                 option: str | None = None, code: str | None = None) -> None:  # fmt: skip
        self.path = str(path) if path is not None else None
        self.reason = message
        # A message that opens with the option it concerns ("--port must be ...") names it.
        self.option = option or (message.split()[0].rstrip(":,")
                                 if message.startswith("--") else None)  # fmt: skip
        if code is not None:
            self.code = code
        super().__init__(f"{self.path}: {message}" if self.path else message)

    def as_dict(self) -> dict:
        """``{"code", "message", "path", "option"}``: what a machine reads."""
        return {"code": self.code, "message": str(self), "path": self.path,
                "option": self.option}  # fmt: skip


class InputError(ReelforgeError):
    """The user gave something we cannot use: a missing or broken file, a bad option."""

    exit_code = 2
    code = "input"
    http_status = 422


class MediaError(ReelforgeError):
    """A media tool (ffmpeg, a decoder) failed on input that looked valid."""

    exit_code = 1
    code = "media"
    http_status = 422


class Cancelled(ReelforgeError):  # noqa: N818 (reads as a state, like KeyboardInterrupt)
    """The run was interrupted (Ctrl-C or SIGTERM); partial outputs were removed."""

    exit_code = 130
    code = "interrupted"
    http_status = 409


class BackendError(ReelforgeError):
    """A model or hosted API failed (after retries) or answered something unusable."""

    exit_code = 1
    code = "backend"
    http_status = 502


class OutputError(ReelforgeError):
    """The output cannot be written (a read-only or full disk, a path that cannot be a
    folder); the message names the output, never a temporary, and the system's reason."""

    exit_code = 1
    code = "output"
    http_status = 507
