"""What a request may read from a served folder: one rule, decided on the resolved real path.

Contract: :meth:`AccessRule.decide` takes a request path relative to the served root (as
the ASGI server decoded it, nothing normalised yet) and an optional playback token, and
either returns a :class:`Grant` for the file or folder it names or raises
:class:`AccessDenied` with the HTTP status to answer:

- the path is resolved once, symlinks and ``..`` included, the way the file system would
  (``os.path.realpath``); everything below is decided on that real path;
- it must lie inside the root (else 404) and no part of it below the root may start with
  ``.`` (markers, caches, partial outputs: 404);
- a folder holding a ``.private`` entry (the root itself included) makes everything under it
  private: without a token that covers the real path the answer is 403, whether or not the
  file exists (so a private stream's file names do not leak through 403/404);
- a token (see :mod:`reelforge.delivery.signing`) opens only its own scope: its prefix,
  resolved under the root the same way, must contain the real path (403 otherwise, also
  for public files); an expired token is 410; ``.`` scopes the root, and only a root that
  is itself a stream;
- then the real path must exist and be of the kind asked for (a regular file, or a stream
  folder with a ``master.m3u8``); errors from the file system (names too long, loops,
  permissions) are 404, never an exception.

Every route that reads from the root (media, signed media, player pages and the bytes they
inline, the index, on-the-fly images) asks this one object. Nothing here writes.
"""

# ruff: noqa: PTH113, PTH116, PTH118
# (string paths: one realpath and a few stats per request, no Path objects)

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from reelforge.delivery.signing import TokenError, read_token_expiry
from reelforge.layout import MASTER

PRIVATE_MARKER = ".private"
ROOT_SCOPE = "."


class AccessDenied(Exception):  # noqa: N818 (an answer, like PermissionError)
    """The request may not read what it names; ``status`` is the HTTP status to send."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Grant:
    """A decision to serve: the real path, its path relative to the root (``""`` for the
    root), its ``stat``, whether it lies in a private folder, and the token's scope (a
    path relative to the root, ``""`` for the root; ``None`` without a token)."""

    path: Path
    rel: str
    stat: os.stat_result
    private: bool
    scope: str | None


def _within(rel: str, scope: str) -> bool:
    return scope == "" or rel == scope or rel.startswith(scope + "/")


class AccessRule:
    """The access decision for one served root (``playback_key`` signs tokens; without
    one, private folders are never served)."""

    def __init__(self, root: Path, playback_key: bytes | None) -> None:
        self.root = os.path.realpath(root)
        self.key = playback_key

    # -- resolution ---------------------------------------------------------------------
    def _relative(self, real: str) -> str | None:
        """``real`` relative to the root (posix, ``""`` for the root), or None outside it."""
        if real == self.root:
            return ""
        prefix = self.root.rstrip("/") + "/"
        return real[len(prefix) :] if real.startswith(prefix) else None

    def _resolve(self, raw: str) -> tuple[str, str]:
        """The real path and root-relative path of ``raw``; AccessDenied(404) when it
        cannot name anything servable."""
        if "\x00" in raw or "\\" in raw or raw.startswith("/"):
            raise AccessDenied(404, "no such file")
        try:
            real = os.path.realpath(os.path.join(self.root, raw))  # never raises for missing
        except (OSError, ValueError):
            raise AccessDenied(404, "no such file") from None
        rel = self._relative(real)
        if rel is None:
            raise AccessDenied(404, "no such file")
        if any(part.startswith(".") for part in rel.split("/") if part):
            raise AccessDenied(404, "no such file")
        return real, rel

    def is_private(self, rel: str, *, folder: bool) -> bool:
        """Whether a folder from the root down to ``rel`` (a folder) or its parent (a
        file) holds the private marker. Missing folders mark nothing."""
        parts = [p for p in rel.split("/") if p]
        if not folder:
            parts = parts[:-1]
        here = self.root
        for part in [None, *parts]:
            if part is not None:
                here = os.path.join(here, part)
            if os.path.lexists(os.path.join(here, PRIVATE_MARKER)):
                return True
        return False

    def scope(self, token: str, now: float | None = None) -> str:
        """The root-relative real folder a valid token opens (``""`` for the root)."""
        return self.token_scope(token, now)[0]

    def token_scope(self, token: str, now: float | None = None) -> tuple[str, int]:
        """:meth:`scope` and the token's expiry (Unix seconds)."""
        if self.key is None:
            raise AccessDenied(404, "signed playback is not configured")
        try:
            prefix, expires = read_token_expiry(self.key, token, now)
        except TokenError as exc:
            raise AccessDenied(exc.status, str(exc)) from None
        return self.stream_scope(prefix), expires

    def stream_scope(self, prefix: str) -> str:
        """The root-relative real folder of the stream ``prefix`` names (``.``: the root,
        which must then be a stream itself); AccessDenied(403) for anything else."""
        if prefix == ROOT_SCOPE:
            if not os.path.isfile(os.path.join(self.root, MASTER)):
                raise AccessDenied(403, "token is for another stream")
            return ""
        try:
            real, rel = self._resolve(prefix)
        except AccessDenied:
            raise AccessDenied(403, "token is for another stream") from None
        if rel == "" or not os.path.isfile(os.path.join(real, MASTER)):
            raise AccessDenied(403, "token is for another stream")
        return rel

    # -- the decision -------------------------------------------------------------------
    def decide(self, raw: str, token: str | None = None, *, kind: str = "file") -> Grant:
        """Grant ``raw`` (``kind`` ``"file"`` or ``"stream"``) to a request carrying
        ``token`` (or none), or raise :class:`AccessDenied`."""
        scope = self.scope(token) if token is not None else None
        real, rel = self._resolve(raw)
        private = self.is_private(rel, folder=kind == "stream")
        if scope is not None and not _within(rel, scope):
            raise AccessDenied(403, "token is for another stream")
        if private and scope is None:
            raise AccessDenied(403, "this stream needs a signed URL")
        try:
            st = os.stat(real)
        except (OSError, ValueError):
            raise AccessDenied(404, "no such file") from None
        if kind == "file" and not stat.S_ISREG(st.st_mode):
            raise AccessDenied(404, "no such file")
        if kind == "stream" and not (
            stat.S_ISDIR(st.st_mode) and os.path.isfile(os.path.join(real, MASTER))
        ):
            raise AccessDenied(404, "no such stream")
        return Grant(Path(real), rel, st, private, scope)

    def allows(self, raw: str, token: str | None = None, *, kind: str = "file") -> bool:
        """Whether :meth:`decide` would grant ``raw``."""
        try:
            self.decide(raw, token, kind=kind)
        except AccessDenied:
            return False
        return True

    def streams(self, scope: str | None = None) -> list[str]:
        """Stream folders one level below the root that a caller with ``scope`` (a
        token's, or None) may play, by the name they are listed under."""
        try:
            names = sorted(e.name for e in os.scandir(self.root) if not e.name.startswith("."))
        except OSError:
            return []
        found = []
        for name in names:
            try:
                real, rel = self._resolve(name)
            except AccessDenied:
                continue
            if not os.path.isfile(os.path.join(real, MASTER)):
                continue
            if scope is not None and not _within(rel, scope):
                continue
            if scope is None and self.is_private(rel, folder=True):
                continue
            found.append(name)
        return found
