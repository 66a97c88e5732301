"""CloudFront signed URLs and signed cookies, made with the user's own key pair.

Contract: :func:`signed_url` signs one URL with a canned policy (only an expiry) or, when
``starts`` or ``ip_range`` is given or ``resource`` differs from the URL (a wildcard such as
``https://d111.cloudfront.net/talk/*``), a custom policy; :func:`signed_cookies` returns the
``CloudFront-Expires``/``CloudFront-Policy``, ``CloudFront-Signature`` and
``CloudFront-Key-Pair-Id`` cookies that unlock ``resource`` (usually a wildcard over one
stream, so HLS child playlists and segments need no signing of their own). Policies are
built and signed by botocore's :class:`~botocore.signers.CloudFrontSigner`; RSA-SHA1 with
PKCS#1 v1.5 (what CloudFront verifies) comes from ``cryptography``. The private key is
read from a PEM file and never printed.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from reelforge.errors import InputError


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not an unencrypted PEM key"
        raise InputError(f"cannot read the private key ({reason})", path=path) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise InputError("CloudFront keys are RSA keys", path=path)
    return key


def _signer(key_pair_id: str, key: rsa.RSAPrivateKey) -> CloudFrontSigner:
    def rsa_sha1(message: bytes) -> bytes:
        return key.sign(message, padding.PKCS1v15(), hashes.SHA1())

    return CloudFrontSigner(key_pair_id, rsa_sha1)


def _when(seconds: float | None) -> dt.datetime | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


def signed_url(url: str, key_pair_id: str, key: rsa.RSAPrivateKey, expires: float, *,
               starts: float | None = None, ip_range: str | None = None,
               resource: str | None = None) -> str:  # fmt: skip
    signer = _signer(key_pair_id, key)
    if starts is None and ip_range is None and resource in (None, url):
        return signer.generate_presigned_url(url, date_less_than=_when(expires))
    policy = signer.build_policy(resource or url, _when(expires), _when(starts), ip_range)
    return signer.generate_presigned_url(url, policy=policy)


def signed_cookies(resource: str, key_pair_id: str, key: rsa.RSAPrivateKey, expires: float, *,
                   starts: float | None = None,
                   ip_range: str | None = None) -> dict[str, str]:  # fmt: skip
    signer = _signer(key_pair_id, key)
    custom = starts is not None or ip_range is not None or "*" in resource
    policy = signer.build_policy(resource, _when(expires), _when(starts), ip_range)
    encoded = policy.encode("utf-8")
    cookies = {
        "CloudFront-Signature": signer._url_b64encode(signer.rsa_signer(encoded)).decode(),
        "CloudFront-Key-Pair-Id": key_pair_id,
    }
    if custom:
        cookies["CloudFront-Policy"] = signer._url_b64encode(encoded).decode()
    else:
        cookies["CloudFront-Expires"] = str(int(expires))
    return cookies
