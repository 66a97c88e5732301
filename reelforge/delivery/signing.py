"""HMAC-SHA256 signatures for URLs.

Contract: :func:`sign` returns the unpadded base64url HMAC-SHA256 of ``message`` under
``key`` (43 characters); :func:`verify` checks one in constant time and never raises on
malformed input. Keys come from the environment (see :mod:`reelforge.config`) and are
never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def sign(key: bytes, message: str) -> str:
    digest = hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def verify(key: bytes, message: str, signature: str) -> bool:
    return hmac.compare_digest(sign(key, message).encode(), signature.encode("utf-8", "replace"))
