"""One HTTP client for every hosted API (fal.ai, Segmind, sync.so ...).

Contract: the API key is taken from the :class:`~reelforge.config.Services` the caller gives
when the client is made (a missing key is an :class:`~reelforge.errors.InputError` naming
its environment variable), and so is the retry backoff; requests time out; 429, 5xx
and connection errors are retried with exponential backoff and jitter (``Retry-After`` is
honoured); 401/403 raise at once with a clear message; other 4xx are not retried. The key
never appears in an error message or log line: any text quoted from a response is scrubbed.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any

import httpx

from reelforge.config import Services
from reelforge.errors import BackendError, InputError

log = logging.getLogger("reelforge.http")
RETRY_STATUS = {429, 500, 502, 503, 504}


class ApiClient:
    def __init__(
        self,
        service: str,
        services: Services,
        *,
        key_env: str,
        auth_header: str,
        key_prefix: str = "",
        timeout: float = 60.0,
        max_attempts: int = 5,
        backoff: float | None = None,
    ) -> None:
        self.service = service
        self.key_env = key_env
        key = services.key(key_env, service=service)
        self._key = key
        self._headers = {auth_header: f"{key_prefix}{key}"}
        self.max_attempts = max_attempts
        self.backoff = services.http_backoff if backoff is None else backoff
        self.http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=10.0), follow_redirects=True
        )
        self.attempts = 0  # requests sent, retries included (for reports and tests)

    def close(self) -> None:
        self.http.close()

    def scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _wait(self, attempt: int, response: httpx.Response | None) -> None:
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after and retry_after.replace(".", "", 1).isdigit():
            delay = min(float(retry_after), 60.0)
        else:
            delay = self.backoff * (2**attempt) * (0.5 + random.random() / 2)
        time.sleep(delay)

    def request(self, method: str, url: str, *, auth: bool = True, **kwargs: Any) -> httpx.Response:
        """Send a request with retries; returns a 2xx/3xx response or raises."""
        headers = {**(self._headers if auth else {}), **kwargs.pop("headers", {})}
        last = ""
        for attempt in range(self.max_attempts):
            self.attempts += 1
            try:
                response = self.http.request(method, url, headers=headers, **kwargs)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                last = f"{type(exc).__name__}"
                log.warning("%s: %s %s failed (%s), retrying", self.service, method, url, last)
                if attempt + 1 < self.max_attempts:
                    self._wait(attempt, None)
                continue
            if response.status_code in (401, 403):
                raise InputError(
                    f"{self.service} rejected the API key in {self.key_env} "
                    f"(HTTP {response.status_code})"
                )
            if response.status_code in RETRY_STATUS:
                last = f"HTTP {response.status_code}"
                log.warning("%s: %s %s gave %s, retrying", self.service, method, url, last)
                if attempt + 1 < self.max_attempts:
                    self._wait(attempt, response)
                continue
            if response.status_code >= 400:
                body = self.scrub(response.text[:200]).replace("\n", " ")
                raise BackendError(
                    f"{self.service}: HTTP {response.status_code} from {url}: {body}"
                )
            return response
        raise BackendError(
            f"{self.service}: {method} {url} failed after {self.max_attempts} tries ({last})"
        )

    def poll(
        self,
        url: str,
        *,
        done: Callable[[dict], bool],
        interval: float = 1.0,
        timeout: float = 900.0,
    ) -> dict:
        """GET ``url`` until ``done(json)``; raises :class:`BackendError` on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            data = self.request("GET", url).json()
            if done(data):
                return data
            if time.monotonic() > deadline:
                raise BackendError(f"{self.service}: gave up waiting after {timeout:.0f} s")
            time.sleep(interval)
