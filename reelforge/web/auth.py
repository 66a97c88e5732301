"""Who is calling: a bearer token for the API, a session cookie for the pages.

Contract: :class:`Auth` answers every request once, in one place: ``Authorization: Bearer
TOKEN`` (an API token, see :mod:`reelforge.web.tokens`), else the ``rf_session`` cookie the
sign-in page sets (HttpOnly, SameSite=Strict, Secure over HTTPS; it names the token, not
its text, and is HMAC-signed with the service's session key, so revoking the token ends
the session). A cookie-authenticated request that changes state (anything but GET, HEAD,
OPTIONS) must also carry the session's CSRF token, in the ``X-CSRF-Token`` header (the
page's scripts) or a ``csrf`` form field (the page's forms): a page on another site can
neither read it nor send it. No credentials: 401 with ``WWW-Authenticate: Bearer``; a
scope too small: 403.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

from fastapi import HTTPException, Request

from reelforge.web.tokens import Principal, TokenStore

COOKIE = "rf_session"
SESSION_SECONDS = 7 * 24 * 3600
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class Auth:
    def __init__(self, tokens: TokenStore, session_key: bytes) -> None:
        self.tokens = tokens
        self.key = session_key

    # --- sessions ------------------------------------------------------------------------

    def _sign(self, text: str) -> str:
        return hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()

    def session_cookie(self, principal: Principal, now: float | None = None) -> str:
        """The cookie value for a signed-in ``principal``."""
        expires = int((now or time.time()) + SESSION_SECONDS)
        body = f"{principal.token_id}.{expires}"
        return f"{body}.{self._sign('session:' + body)}"

    def csrf_token(self, cookie: str) -> str:
        """The CSRF token bound to one session cookie."""
        return self._sign("csrf:" + cookie)[:32]

    def _session(self, cookie: str) -> Principal | None:
        parts = cookie.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        body = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(parts[2], self._sign("session:" + body)):
            return None
        if int(parts[1]) < time.time():
            return None
        return self.tokens.get(parts[0])

    # --- requests -----------------------------------------------------------------------

    async def identify(self, request: Request) -> Principal | None:
        """The caller, or ``None``; raises 403 for a cookie request without its CSRF token."""
        header = request.headers.get("authorization", "")
        if header:
            kind, _, token = header.partition(" ")
            if kind.lower() != "bearer" or not token.strip():
                return None
            return self.tokens.check(token.strip())
        cookie = request.cookies.get(COOKIE)
        if not cookie:
            return None
        principal = self._session(cookie)
        if principal is None:
            return None
        if request.method not in SAFE_METHODS:
            sent = request.headers.get("x-csrf-token")
            if sent is None and request.headers.get("content-type", "").startswith(
                ("application/x-www-form-urlencoded", "multipart/form-data")
            ):
                sent = (await request.form()).get("csrf")
            if not isinstance(sent, str) or not hmac.compare_digest(sent, self.csrf_token(cookie)):
                raise HTTPException(403, "missing or wrong CSRF token")
        return principal

    def require(self, scope: str) -> Callable:
        """A FastAPI dependency: the caller, with at least ``scope``."""

        async def dependency(request: Request) -> Principal:
            principal = await self.identify(request)
            if principal is None:
                raise HTTPException(401, "a valid API token is needed: "
                                    "Authorization: Bearer TOKEN",
                                    headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
            if not principal.allows(scope):
                raise HTTPException(403, f"this token's scope is {principal.scope}; "
                                    f"this needs {scope}")  # fmt: skip
            request.state.principal = principal
            return principal

        return dependency
