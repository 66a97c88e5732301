"""All-or-nothing outputs: build in a temporary sibling, rename into place at the end.

Contract: :func:`atomic_output_dir` yields an empty temporary directory next to ``target``.
If the block completes, the temporary directory replaces ``target`` (an existing target is
only replaced when ``force`` is true, and is removed after the swap). If the block raises
(KeyboardInterrupt included), the temporary directory is deleted and ``target`` is left as
it was.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from reelforge.errors import InputError


def check_output_dir(target: Path, *, force: bool) -> None:
    """Raise :class:`InputError` if ``target`` exists and may not be replaced."""
    if target.exists() and not force:
        raise InputError("output already exists (use --force to replace it)", path=target)
    if target.exists() and not target.is_dir():
        raise InputError("output exists and is not a directory", path=target)


@contextlib.contextmanager
def atomic_output_dir(target: Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``target`` that becomes ``target`` on success."""
    target = target.absolute()
    check_output_dir(target, force=force)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the parent folder ({exc.strerror})", path=target) from None
    tmp = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary sibling and rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
