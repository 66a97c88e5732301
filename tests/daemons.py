"""Throwaway servers for tests: a Redis and a PostgreSQL cluster on free loopback ports.

Both are the machine's own Debian binaries, started by the test and stopped after it;
a test skips (saying why) when a binary is missing. PostgreSQL refuses to run as root, so
as root the cluster runs as the ``postgres`` user (or ``nobody``) through ``runuser``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


def _pg_bin() -> Path:
    """Debian's newest PostgreSQL binaries (``REELFORGE_TEST_PG_BIN`` overrides)."""
    if given := os.environ.get("REELFORGE_TEST_PG_BIN"):
        return Path(given)
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)  # fmt: skip
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()


def _wait_port(port: int, proc: subprocess.Popen | None, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


class RedisServer:
    """``redis-server`` in the foreground on a free port, nothing saved to disk;
    :meth:`restart` stops it and starts a fresh one on the same port (its data gone)."""

    def __init__(self) -> None:
        if not Path(REDIS).is_file():
            pytest.skip(f"redis-server not installed ({REDIS})")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_port(self.port, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


def _unprivileged() -> tuple[list[str], int | None, int | None]:
    """The command prefix, uid and gid PostgreSQL runs with: ours unless we are root."""
    if os.geteuid() != 0:
        return [], None, None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            user = pwd.getpwnam(name)
            runuser = shutil.which("runuser")
            if runuser is None:
                pytest.skip("running as root without runuser: PostgreSQL cannot start")
            return [runuser, "-u", name, "--"], user.pw_uid, user.pw_gid
    pytest.skip("running as root and no unprivileged user to run PostgreSQL as")


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """A fresh PostgreSQL cluster (``initdb`` + ``pg_ctl``) in a temporary folder on a free
    port, trusting loopback; yields its ``postgresql+psycopg://`` URL; removed afterwards."""
    if not (PG_BIN / "initdb").is_file():
        pytest.skip(f"PostgreSQL not installed ({PG_BIN})")
    pytest.importorskip("psycopg")
    prefix, uid, gid = _unprivileged()
    root = Path(tempfile.mkdtemp(prefix="reelforge-pg-"))
    data, port = root / "data", free_port()
    if uid is not None:
        os.chown(root, uid, gid)
    run = lambda *cmd: subprocess.run([*prefix, *map(str, cmd)], check=True,  # noqa: E731
                                      capture_output=True, text=True, timeout=120)  # fmt: skip
    try:
        run(PG_BIN / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--no-sync")  # fmt: skip
        run(PG_BIN / "pg_ctl", "-D", data, "-l", root / "log", "-w", "-t", "60", "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")  # fmt: skip
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"{exc.cmd[len(prefix)]} failed: {exc.stderr or exc.stdout}") from None
    finally:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            run(PG_BIN / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
