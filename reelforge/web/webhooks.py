"""Webhooks: ``video.ready`` and ``video.errored``, signed, retried with backoff.

Contract: :meth:`Webhooks.enqueue` stores a delivery (nothing is lost if the service stops:
pending deliveries go out after a restart); a sender thread POSTs it as JSON with

    ReelForge-Signature: t=UNIX_SECONDS,v1=HEX

where ``HEX`` is HMAC-SHA256 over ``f"{t}.{body}"`` with the service's webhook secret
(``REELFORGE_WEBHOOK_SECRET``). A 2xx ends it; anything else (or no answer within 10 s)
is retried after 1, 2, 4 ... s (at most 5 min apart, up to :data:`MAX_ATTEMPTS`), then it
is marked failed. To verify a delivery, see :func:`verify` (the README shows the recipe):
recompute the HMAC over the raw body and refuse timestamps older than 5 minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time

import httpx
import sqlalchemy as sa

from reelforge.web.db import deliveries_table

HEADER = "ReelForge-Signature"
MAX_ATTEMPTS = 10
TOLERANCE_S = 300
log = logging.getLogger("reelforge.web")


def signature(secret: bytes, body: str, timestamp: int) -> str:
    """The header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: bytes, body: bytes, header: str, now: float | None = None) -> bool:
    """Whether ``header`` signs ``body`` (raw bytes as received) and is recent."""
    fields = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    stamp = fields.get("t", "")
    if not stamp.isdigit() or abs((now or time.time()) - int(stamp)) > TOLERANCE_S:
        return False
    expected = hmac.new(secret, f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("v1", ""))


def backoff(attempts: int) -> float:
    return min(300.0, 2.0 ** max(0, attempts - 1))


class Webhooks:
    def __init__(self, engine: sa.Engine, secret: bytes) -> None:
        self.engine = engine
        self.secret = secret
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def enqueue(self, url: str, video_id: str, event: str, data: dict) -> None:
        body = json.dumps({"type": event, "created": int(time.time()), "data": data},
                          separators=(",", ":"))  # fmt: skip
        with self.engine.begin() as c:
            c.execute(deliveries_table.insert().values(
                video_id=video_id, event=event, url=url, body=body, attempts=0,
                next_at=time.time(), status="pending"))  # fmt: skip
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=12)

    def _loop(self) -> None:
        with httpx.Client(timeout=10.0, follow_redirects=False) as client:
            while not self._stop.is_set():
                wait = self._send_due(client)
                self._wake.wait(timeout=wait)
                self._wake.clear()

    def _send_due(self, client: httpx.Client) -> float:
        """Send what is due; the seconds until the next one is."""
        now = time.time()
        with self.engine.connect() as c:
            due = c.execute(sa.select(deliveries_table)
                            .where(deliveries_table.c.status == "pending",
                                   deliveries_table.c.next_at <= now)
                            .order_by(deliveries_table.c.id).limit(20)).all()  # fmt: skip
        for row in due:
            if self._stop.is_set():
                return 0.0
            self._send(client, row)
        with self.engine.connect() as c:
            nxt = c.execute(sa.select(sa.func.min(deliveries_table.c.next_at))
                            .where(deliveries_table.c.status == "pending")).scalar()  # fmt: skip
        return 5.0 if nxt is None else max(0.05, min(5.0, nxt - time.time()))

    def _send(self, client: httpx.Client, row: sa.Row) -> None:
        stamp = int(time.time())
        headers = {"content-type": "application/json",
                   HEADER: signature(self.secret, row.body, stamp)}  # fmt: skip
        error = None
        try:
            response = client.post(row.url, content=row.body.encode(), headers=headers)
            if not 200 <= response.status_code < 300:
                error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        attempts = row.attempts + 1
        if error is None:
            values = {"status": "sent", "attempts": attempts, "last_error": None}
        elif attempts >= MAX_ATTEMPTS:
            values = {"status": "failed", "attempts": attempts, "last_error": error}
            log.warning("webhook %s for %s failed %d times (%s)", row.event, row.video_id,
                        attempts, error)  # fmt: skip
        else:
            values = {"attempts": attempts, "last_error": error,
                      "next_at": time.time() + backoff(attempts)}  # fmt: skip
        with self.engine.begin() as c:
            c.execute(deliveries_table.update().where(deliveries_table.c.id == row.id)
                      .values(**values))  # fmt: skip

    def deliveries(self, video_id: str) -> list[dict]:
        with self.engine.connect() as c:
            rows = c.execute(sa.select(deliveries_table)
                             .where(deliveries_table.c.video_id == video_id)).all()  # fmt: skip
        return [{"event": r.event, "status": r.status, "attempts": r.attempts,
                 "last_error": r.last_error} for r in rows]  # fmt: skip
