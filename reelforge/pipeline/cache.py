"""Finished steps' outputs, one folder per step key.

Contract: ``ROOT/<key[:2]>/<key>/`` holds a step's files and ``step.json`` (its name, key,
report and build time); a folder is visible only once complete. :meth:`StepCache.build`
has ``make`` write into a hidden sibling (``.<key>.partial-XXXXXXXX``) that is renamed
into place when ``make`` returns, under a per-key ``flock`` (``.<key>.lock``): two
processes never build one key at once; the second waits, then finds the first one's
result. A build that fails, is interrupted or is killed leaves no visible result; its
leftovers are removed by the next build of that key.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from reelforge.errors import OutputError

RECORD = "step.json"


@dataclass
class StepResult:
    """A step's output folder and report; ``cached`` when it was found rather than built,
    ``seconds`` the time this run spent on it (looking up, or building)."""

    key: str
    name: str
    folder: Path
    report: dict
    cached: bool
    seconds: float

    def file(self, relative: str) -> Path:
        """A file of this result; refuses names that leave the folder."""
        path = (self.folder / relative).resolve()
        if self.folder.resolve() not in path.parents:
            raise ValueError(f"{relative!r} is outside the step's folder")
        return path


class StepCache:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def folder(self, key: str) -> Path:
        if len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"not a step key: {key!r}")
        return self.root / key[:2] / key

    def lookup(self, key: str) -> StepResult | None:
        started = time.monotonic()
        folder = self.folder(key)
        try:
            record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return StepResult(key=key, name=record.get("name", ""), folder=folder,
                          report=record.get("report", {}), cached=True,
                          seconds=time.monotonic() - started)  # fmt: skip

    def build(self, key: str, name: str, make: Callable[[Path], dict]) -> StepResult:
        """The result for ``key``: found, or made by ``make(empty folder) -> report``."""
        started = time.monotonic()
        folder = self.folder(key)
        with self._locked(folder):
            found = self.lookup(key)
            if found is not None:
                found.seconds = time.monotonic() - started
                return found
            self._remove_leftovers(folder)
            tmp = folder.with_name(f".{key}.partial-{uuid.uuid4().hex[:8]}")
            tmp.mkdir()
            try:
                report = make(tmp)
                if not isinstance(report, dict):
                    raise TypeError(f"step {name} returned {type(report).__name__}, not a dict")
                seconds = time.monotonic() - started
                record = {"name": name, "key": key, "report": report,
                          "build_seconds": round(seconds, 3), "built_at": time.time()}  # fmt: skip
                (tmp / RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")
                _fsync_tree(tmp)
                tmp.rename(folder)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return StepResult(key=key, name=name, folder=folder, report=report, cached=False,
                          seconds=time.monotonic() - started)  # fmt: skip

    def remove(self, key: str) -> bool:
        """Forget one result (for example one whose files were damaged); True if it existed."""
        folder = self.folder(key)
        with self._locked(folder):
            if not folder.exists():
                return False
            trash = folder.with_name(f".{key}.partial-{uuid.uuid4().hex[:8]}")
            folder.rename(trash)  # invisible at once, then deleted
            shutil.rmtree(trash, ignore_errors=True)
            return True

    @contextlib.contextmanager
    def _locked(self, folder: Path) -> Iterator[None]:
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder.parent / f".{folder.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot use the step cache ({exc.strerror})",
                              path=self.root) from None  # fmt: skip
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # the OS releases it if this process dies
            yield
        finally:
            os.close(fd)

    @staticmethod
    def _remove_leftovers(folder: Path) -> None:
        """Partial folders of this key left by a killed build (we hold the key's lock)."""
        for stale in folder.parent.glob(f".{folder.name}.partial-*"):
            shutil.rmtree(stale, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    """Flush the files before the rename publishes them (a crash then shows all or none)."""
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
