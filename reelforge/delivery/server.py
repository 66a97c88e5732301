"""Run the origin on an ASGI server.

Contract: :func:`check_address` says, before anything is printed, whether the address can
be listened on; :func:`serve` blocks serving ``root`` on ``host:port`` with granian (default: it
sends files itself through the ASGI pathsend extension) or uvicorn, in ``workers``
processes. On SIGTERM the server stops within ``STOP_GRACE_S`` seconds (granian).
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from reelforge.errors import InputError

SERVERS = ("granian", "uvicorn")
STOP_GRACE_S = 5  # on SIGTERM, workers still busy after this long are killed
APP_FACTORY = "reelforge.delivery.app:app_from_env"


def check_address(host: str, port: int) -> None:
    """Raise :class:`InputError` (one line) unless ``host:port`` can be listened on now:
    the port is 1-65535, the host resolves to a local address and nothing else holds it."""
    if not 1 <= port <= 65535:
        raise InputError(f"--port must be 1 to 65535, not {port}", option="--port")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise InputError(
            f"--host {host!r} is not an address here ({exc})", option="--host"
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
        try:
            sock.bind(address)
        except OSError as exc:
            busy = exc.errno == errno.EADDRINUSE
            reason = "is in use" if busy else f"cannot be used ({exc.strerror})"
            raise InputError(
                f"{host}:{port} {reason}", option="--port", code="port-in-use" if busy else None
            ) from None


def serve(root: str | Path, *, host: str, port: int, server: str = "granian",
          workers: int = 1) -> None:  # fmt: skip
    root = str(root)
    # The server's worker processes build the app from their environment (config.load()).
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
