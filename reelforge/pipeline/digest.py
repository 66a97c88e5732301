"""Content digests of step inputs, and step keys.

Contract: :func:`file_digest` is the SHA-256 (hex) of a file's bytes. With a
:class:`DigestMemo` (a small SQLite file in the state folder) a file whose real path,
size, ``mtime_ns`` and inode are unchanged is not read again; a file modified in the last
:data:`RACY_SECONDS` is never memoised (timestamps are coarse: a quick rewrite could keep
them), so a stale digest cannot be served. :func:`folder_digest` covers a folder's files by
relative name and content. :func:`step_key` is the SHA-256 of the canonical JSON of a step's
name, version, input digests (by input name) and options: it changes when an input's
content or an option changes, never when only a timestamp does.

The memo is local on purpose: paths and inodes mean something on one machine only, while
the job store may be shared.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path

from reelforge.errors import InputError
from reelforge.pipeline.spec import StepSpec

RACY_SECONDS = 2.0
_SCHEMA = """CREATE TABLE IF NOT EXISTS digests (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL, sha256 TEXT NOT NULL, hashed_at REAL NOT NULL)"""


class DigestMemo:
    """Digests remembered by (real path, size, mtime_ns, inode) in a SQLite file.

    Safe to share between processes (WAL, a busy timeout). If the file cannot be opened or
    written the memo turns itself off and digests are simply computed."""

    def __init__(self, path: Path | str | None) -> None:
        self.path = Path(path) if path is not None else None
        self._conn: sqlite3.Connection | None = None
        self._local: dict[tuple, str] = {}
        self._lock = threading.Lock()
        self._broken = path is None

    def _db(self) -> sqlite3.Connection | None:
        if self._broken:
            return None
        if self._conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=10, isolation_level=None,
                                       check_same_thread=False)  # fmt: skip
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(_SCHEMA)
            except (sqlite3.Error, OSError):
                self._broken = True
                return None
            self._conn = conn
        return self._conn

    def get(self, real: str, st: os.stat_result) -> str | None:
        ident = (real, st.st_size, st.st_mtime_ns, st.st_ino)
        with self._lock:
            if ident in self._local:
                return self._local[ident]
            db = self._db()
            if db is None:
                return None
            try:
                row = db.execute("SELECT size, mtime_ns, inode, sha256 FROM digests WHERE path=?",
                                 (real,)).fetchone()  # fmt: skip
            except sqlite3.Error:
                return None
        if row and tuple(row[:3]) == ident[1:]:
            self._local[ident] = row[3]
            return row[3]
        return None

    def put(self, real: str, st: os.stat_result, digest: str) -> None:
        if time.time() - st.st_mtime_ns / 1e9 < RACY_SECONDS:
            return  # too fresh to trust the timestamp (see the module docstring)
        with self._lock:
            self._local[(real, st.st_size, st.st_mtime_ns, st.st_ino)] = digest
            db = self._db()
            if db is None:
                return
            with contextlib.suppress(sqlite3.Error):
                row = (real, st.st_size, st.st_mtime_ns, st.st_ino, digest, time.time())
                db.execute("INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?)", row)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


_PROCESS_MEMO = DigestMemo(None)  # in-memory only: used when no memo is given


def file_digest(path: Path, memo: DigestMemo | None = None) -> str:
    """SHA-256 hex of ``path``'s content (memoised; see the module docstring)."""
    memo = memo or _PROCESS_MEMO
    real = Path(os.path.realpath(path))
    try:
        st = real.stat()
    except FileNotFoundError:
        raise InputError("no such file", path=path) from None
    if not real.is_file():
        raise InputError("is not a regular file", path=path)
    known = memo.get(str(real), st)
    if known is not None:
        return known
    with real.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
        after = os.fstat(f.fileno())
    if (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns):
        memo.put(str(real), st, digest)  # not if it changed while being read
    return digest


def folder_digest(folder: Path, memo: DigestMemo | None = None) -> str:
    """SHA-256 hex over every file under ``folder``: relative name and content digest."""
    h = hashlib.sha256()
    root = Path(os.path.realpath(folder))
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        h.update(f"{rel}\0{file_digest(path, memo)}\n".encode())
    return h.hexdigest()


def input_digest(path: Path, memo: DigestMemo | None = None) -> str:
    """``file:<sha256>`` for a file, ``dir:<sha256>`` for a folder (see above)."""
    if Path(path).is_dir():
        return "dir:" + folder_digest(path, memo)
    return "file:" + file_digest(path, memo)


def canonical_json(data: object) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode()  # fmt: skip


def step_key(spec: StepSpec, memo: DigestMemo | None = None) -> str:
    """SHA-256 hex over the canonical JSON of the spec's name, version, input digests (by
    input name) and options; input paths themselves do not count, only their content."""
    body = {
        "name": spec.name,
        "version": spec.version,
        "inputs": {name: input_digest(path, memo) for name, path in spec.inputs.items()},
        "options": dict(spec.options),
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()
