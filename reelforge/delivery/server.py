"""Run the origin on an ASGI server.

Contract: :func:`serve` blocks serving ``root`` on ``host:port`` with granian (default: it
sends files itself through the ASGI pathsend extension) or uvicorn, in ``workers``
processes. On SIGTERM the server stops within ``STOP_GRACE_S`` seconds (granian).
"""

from __future__ import annotations

import os
from pathlib import Path

SERVERS = ("granian", "uvicorn")
STOP_GRACE_S = 5  # on SIGTERM, workers still busy after this long are killed
APP_FACTORY = "reelforge.delivery.app:app_from_env"


def serve(root: str | Path, *, host: str, port: int, server: str = "granian",
          workers: int = 1) -> None:  # fmt: skip
    root = str(root)
    os.environ["REELFORGE_SERVE_ROOT"] = root if root.startswith("s3://") else str(
        Path(root).resolve())  # fmt: skip
    if server == "granian":
        from granian import Granian
        from granian.constants import Interfaces

        Granian(
            APP_FACTORY,
            address=host,
            port=port,
            interface=Interfaces.ASGI,
            factory=True,
            workers=workers,
            # idle keep-alive connections (players, CDN edges) must not hold a stop forever
            workers_kill_timeout=STOP_GRACE_S,
            log_level="warning",
        ).serve()
    elif server == "uvicorn":
        import uvicorn

        uvicorn.run(APP_FACTORY, host=host, port=port, factory=True, workers=workers,
                    log_level="warning")  # fmt: skip
    else:
        raise ValueError(f"unknown server {server!r}; choose from {', '.join(SERVERS)}")
