"""Small file-system helpers for writing inside an output a step has claimed.

Claiming an output (overlap with inputs, locking, the final rename) is
:mod:`reelforge.outputs`'s job; these helpers work beneath it:

- :func:`scratch_dir` is a temporary working folder next to a path (same file system),
  always removed;
- :func:`write_bytes_atomic` and :func:`write_text_atomic` replace one file through a
  uniquely named temporary sibling, so a reader sees the old file or the new, never half
  of one, and an interrupt (Ctrl-C, SIGTERM) at any moment leaves no temporary behind.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def scratch_dir(near: Path) -> Iterator[Path]:
    """A temporary working folder next to ``near`` (same file system), always removed."""
    near = near.absolute()
    path = near.parent / f".{near.name}.work-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary sibling and rename it over ``path``; the temporary is
    removed whatever stops the write, an interrupt included."""
    tmp = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` as :func:`write_bytes_atomic` does."""
    write_bytes_atomic(path, text.encode("utf-8"))
