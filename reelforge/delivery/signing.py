"""HMAC-SHA256 signatures for URLs, and playback tokens scoped to a stream.

Contract: :func:`sign` returns the unpadded base64url HMAC-SHA256 of ``message`` under
``key`` (43 characters); :func:`verify` checks one in constant time and never raises on
malformed input. :func:`make_token` makes a playback token for the stream folder
``prefix`` until ``expires`` (Unix seconds): ``<base64url(expires:prefix)>.<signature>``.
It travels in the URL path (``/p/<token>/<prefix>/master.m3u8``), so the relative URIs of
HLS child playlists, segments and DASH segments carry it without rewriting.
:func:`read_token` returns a token's prefix or raises :class:`TokenError` with status 403
(malformed, bad signature, no normalised prefix) or 410 (expired); which paths a prefix
opens is decided on resolved paths by :mod:`reelforge.delivery.access`. Keys come from
the environment (see :mod:`reelforge.config`) and are never logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

MAX_TOKEN = 512


class TokenError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def sign(key: bytes, message: str) -> str:
    digest = hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def verify(key: bytes, message: str, signature: str) -> bool:
    return hmac.compare_digest(sign(key, message).encode(), signature.encode("utf-8", "replace"))


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def make_token(key: bytes, prefix: str, expires: int) -> str:
    """A token for the stream folder ``prefix`` (see :func:`valid_prefix`) until ``expires``."""
    if not valid_prefix(prefix):
        raise ValueError(f"not a normalised stream prefix: {prefix!r}")
    payload = f"{int(expires)}:{prefix}"
    return f"{_b64(payload)}.{sign(key, payload)}"


def valid_prefix(prefix: str) -> bool:
    """Whether ``prefix`` is a normalised stream path: ``.`` (the root), or non-empty parts
    separated by single slashes, none of them ``.``, ``..`` or a dot-name."""
    if prefix == ".":
        return True
    parts = prefix.split("/")
    return (
        bool(prefix)
        and "\\" not in prefix
        and "\x00" not in prefix
        and all(p and not p.startswith(".") for p in parts)
    )


def read_token(key: bytes, token: str, now: float | None = None) -> str:
    """The prefix a genuine, unexpired token was made for; else :class:`TokenError`.
    Tokens without a normalised prefix (an empty one opened everything) are refused."""
    return read_token_expiry(key, token, now)[0]


def read_token_expiry(key: bytes, token: str, now: float | None = None) -> tuple[str, int]:
    """:func:`read_token`'s prefix and the token's expiry (Unix seconds)."""
    if len(token) > MAX_TOKEN or token.count(".") != 1:
        raise TokenError(403, "malformed token")
    encoded, signature = token.split(".")
    try:
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")
        expires_text, prefix = payload.split(":", 1)
        expires = int(expires_text)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise TokenError(403, "malformed token") from None
    if not verify(key, payload, signature):
        raise TokenError(403, "bad signature")
    if not valid_prefix(prefix):
        raise TokenError(403, "token has no stream scope")
    if (time.time() if now is None else now) >= expires:
        raise TokenError(410, "token expired")
    return prefix, expires
