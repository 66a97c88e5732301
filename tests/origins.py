"""The origins the conformance tests run against: ``reelforge serve``, and real nginx with
the configuration ``reelforge cdn nginx --serve`` writes, in front of ``reelforge serve``.

:func:`start_origin` returns an object with ``base``, ``port`` and ``stop()`` either way, so
a test speaks to both the same way. nginx is Debian's binary (``.ci/run`` installs it); a
test skips, saying why, when it is missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import Server, free_port, run_cli

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
KINDS = ("serve", "nginx")


class NginxOrigin:
    """nginx serving ``root`` with the origin configuration, the app (``reelforge serve``
    on ``server``) behind it for tokens, pages, images and denials."""

    def __init__(self, root: Path, server: str = "granian", env: dict | None = None,
                 manifest_ttl: int | None = None) -> None:  # fmt: skip
        if not Path(NGINX).is_file():
            pytest.skip(f"nginx is not installed ({NGINX}; .ci/run installs the Debian package)")
        self.app = Server(root, server, env=env)
        self.prefix = Path(tempfile.mkdtemp(prefix="reelforge-nginx-origin-"))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        conf = self.prefix / "nginx.conf"
        user = ["--user", "root"] if os.geteuid() == 0 else []
        ttl = ["--manifest-ttl", str(manifest_ttl)] if manifest_ttl is not None else []
        made = run_cli("cdn", "nginx", "--serve", root, "-o", conf, "--origin",
                       f"127.0.0.1:{self.app.port}", "--listen", f"127.0.0.1:{self.port}",
                       "--prefix", self.prefix, *user, *ttl,
                       env={**os.environ, **(env or {})})  # fmt: skip
        if made.returncode != 0:
            self.app.stop()
            raise RuntimeError(made.stderr)
        self.conf = conf
        command = [NGINX, "-p", str(self.prefix), "-c", str(conf), "-g", "daemon off;"]
        self.proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.app.stop()
                raise RuntimeError(f"nginx exited: {self.proc.stderr.read()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("nginx did not start")

    def access_log(self) -> list[str]:
        """The access log's lines so far (nginx flushes its buffer within a second)."""
        path = self.prefix / "access.log"
        return path.read_text().splitlines() if path.exists() else []

    def stop(self) -> str:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        out = self.app.stop()
        shutil.rmtree(self.prefix, ignore_errors=True)
        return out


def start_origin(kind: str, root: Path, server: str = "granian", env: dict | None = None):
    """``reelforge serve`` (``kind`` ``"serve"``, or a server name) or nginx in front of it
    (``"nginx"``), serving ``root`` with ``env`` added."""
    if kind == "nginx":
        return NginxOrigin(root, server, env)
    return Server(root, server if kind == "serve" else kind, env=env)
