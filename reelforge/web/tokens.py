"""API tokens: made once, stored hashed, checked on every call.

Contract: :meth:`TokenStore.create` returns the token text once (``rf_`` + 43 URL-safe
characters, 256 random bits); only its SHA-256 is stored, so a copy of the database opens
nothing. :meth:`TokenStore.check` returns the :class:`Principal` for a token or ``None``
(unknown or revoked). Scopes are ordered: ``read`` (see videos, play them) < ``upload``
(also upload and create) < ``admin`` (also delete anything, retry jobs, every owner's
videos).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa

from reelforge.errors import InputError
from reelforge.web.db import tokens_table

SCOPES = ("read", "upload", "admin")
PREFIX = "rf_"


@dataclass(frozen=True)
class Principal:
    token_id: str
    name: str
    scope: str
    webhook_url: str | None = None

    def allows(self, scope: str) -> bool:
        """Whether this token's scope includes ``scope``."""
        return SCOPES.index(self.scope) >= SCOPES.index(scope)

    @property
    def admin(self) -> bool:
        return self.scope == "admin"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


class TokenStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def create(self, name: str, scope: str = "upload",
               webhook_url: str | None = None) -> tuple[Principal, str]:  # fmt: skip
        """A new token named ``name``: ``(principal, token text)``; the text is not kept."""
        if scope not in SCOPES:
            raise InputError(f"--scope must be one of {', '.join(SCOPES)}, not {scope!r}")
        name = name.strip()
        if not name or len(name) > 120 or not name.isprintable():
            raise InputError("a token's name must be 1 to 120 printable characters")
        if webhook_url is not None and not webhook_url.startswith(("http://", "https://")):
            raise InputError(f"--webhook must be an http(s) URL, not {webhook_url!r}")
        token = PREFIX + secrets.token_urlsafe(32)
        token_id = "tok_" + secrets.token_hex(8)
        with self.engine.begin() as c:
            c.execute(tokens_table.insert().values(
                id=token_id, name=name, scope=scope, digest=digest(token),
                webhook_url=webhook_url, created_at=time.time(), revoked=False))  # fmt: skip
        return Principal(token_id, name, scope, webhook_url), token

    def check(self, token: str) -> Principal | None:
        """The principal for ``token``, or ``None``."""
        if not token.startswith(PREFIX) or len(token) > 200:
            return None
        with self.engine.connect() as c:
            row = c.execute(sa.select(tokens_table)
                            .where(tokens_table.c.digest == digest(token))).first()  # fmt: skip
        if row is None or row.revoked:
            return None
        return Principal(row.id, row.name, row.scope, row.webhook_url)

    def get(self, token_id: str) -> Principal | None:
        """The principal of a token by its id, or ``None`` (unknown or revoked)."""
        with self.engine.connect() as c:
            row = c.execute(sa.select(tokens_table).where(tokens_table.c.id == token_id)).first()
        if row is None or row.revoked:
            return None
        return Principal(row.id, row.name, row.scope, row.webhook_url)

    def list(self) -> list[dict]:
        with self.engine.connect() as c:
            rows = c.execute(sa.select(tokens_table).order_by(tokens_table.c.created_at)).all()
        return [{"id": r.id, "name": r.name, "scope": r.scope, "revoked": r.revoked,
                 "webhook_url": r.webhook_url, "created_at": r.created_at}
                for r in rows]  # fmt: skip

    def revoke(self, token_id: str) -> bool:
        with self.engine.begin() as c:
            done = c.execute(tokens_table.update().where(tokens_table.c.id == token_id)
                             .values(revoked=True)).rowcount  # fmt: skip
        return bool(done)
