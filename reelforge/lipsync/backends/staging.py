"""Inputs for services that fetch them by URL (Tavus, Vozo): staged in S3, read through
presigned GET URLs.

Contract: :class:`Staging` is made from the :class:`~reelforge.config.Services`' ``staging``
location (``s3://BUCKET/PREFIX``; unset is an :class:`~reelforge.errors.InputError` naming
``REELFORGE_STAGING``). :meth:`Staging.url` uploads a local file under
``PREFIX/reelforge-staging/<random>/<name>`` and returns a presigned GET URL valid for
``staging_expiry`` seconds; :meth:`Staging.close` (or leaving the ``with`` block, however it
is left) deletes every object this instance uploaded, so nothing stays in the bucket after a
job ends, fails or times out. Credentials come from boto3's usual configuration (see
:mod:`reelforge.storage`) and never appear in messages; a presigned URL carries a signature,
so it is never logged either.
"""

from __future__ import annotations

import contextlib
import mimetypes
import uuid
from pathlib import Path

from reelforge.config import Services
from reelforge.errors import InputError, ReelforgeError
from reelforge.storage import S3Location, client, parse_s3


class Staging:
    def __init__(self, services: Services, service: str, s3=None) -> None:
        if not services.staging:
            raise InputError(
                f"{service} fetches its inputs by URL: set REELFORGE_STAGING to an "
                "s3://BUCKET/PREFIX it may read through presigned URLs"
            )
        self.where: S3Location = parse_s3(services.staging)
        self.expiry = int(services.staging_expiry)
        self.service = service
        self._s3 = s3
        self.keys: list[str] = []  # objects uploaded and not yet deleted
        self.folder = f"reelforge-staging/{uuid.uuid4().hex}"

    @property
    def s3(self):
        if self._s3 is None:
            self._s3 = client()
        return self._s3

    def url(self, path: Path) -> str:
        """Upload ``path`` and return a presigned GET URL for it."""
        from botocore.exceptions import BotoCoreError, ClientError

        key = self.where.key(f"{self.folder}/{path.name}")
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        try:
            self.s3.upload_file(str(path), self.where.bucket, key, ExtraArgs={"ContentType": mime})
            self.keys.append(key)
            return self.s3.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.where.bucket, "Key": key},
                ExpiresIn=self.expiry,
            )
        except (BotoCoreError, ClientError) as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
            raise ReelforgeError(
                f"{self.where}: staging {path.name} for {self.service} failed ({code})"
            ) from None

    def close(self) -> None:
        """Delete what was uploaded (best effort: a failure here does not hide the job's)."""
        from botocore.exceptions import BotoCoreError, ClientError

        while self.keys:
            key = self.keys.pop()
            with contextlib.suppress(BotoCoreError, ClientError):
                self.s3.delete_object(Bucket=self.where.bucket, Key=key)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
