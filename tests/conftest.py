"""Shared fixtures: real media from ../shared/media, and streams published once per session."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelforge.media import ffmpeg

ROOT = Path(__file__).resolve().parents[1]
MEDIA = Path(os.environ.get("REELFORGE_TEST_MEDIA", ROOT.parent / "shared" / "media"))
CLI = [sys.executable, "-m", "reelforge.cli"]

TEST_LADDER = [
    {"width": 416, "height": 234, "bitrate_kbps": 145},
    {"width": 640, "height": 360, "bitrate_kbps": 365},
    {"width": 960, "height": 540, "bitrate_kbps": 2000},
    {"width": 1280, "height": 720, "bitrate_kbps": 3000},
]


# The state folder this conftest made (xdist workers inherit the controller's environment).
_OWN_STATE = "PYTEST_REELFORGE_OWN_STATE"


def pytest_configure(config) -> None:
    """Every run of ours in this session records its jobs and steps in a state folder of
    its own (a test that needs another sets REELFORGE_STATE itself), never the user's; each
    xdist worker gets one of its own, so no two processes of the run share a job store."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    inherited = worker and os.environ.get("REELFORGE_STATE") == os.environ.get(_OWN_STATE)
    if "REELFORGE_STATE" not in os.environ or inherited:
        import tempfile

        state = tempfile.mkdtemp(prefix=f"reelforge-test-state-{worker + '-' if worker else ''}")
        os.environ["REELFORGE_STATE"] = os.environ[_OWN_STATE] = state


def built_once(tmp_path_factory, name: str, build: Callable[[Path], Any]) -> tuple[Path, Any]:
    """A folder that ``build(folder)`` fills once per test run, and the JSON-able value it
    returned. Under xdist the workers share it: the first to ask builds it under a lock, the
    others wait for it and read it (a build that failed is retried by the next to ask)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above every worker's own
    folder, value = root / f"shared-{name}", root / f"shared-{name}.json"
    with (root / f"shared-{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not value.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            value.write_text(json.dumps(build(folder)))
    return folder, json.loads(value.read_text())


def media(relative: str) -> Path:
    """A file from the shared test media; skips the test (saying why) when it is absent."""
    path = MEDIA / relative
    if not path.is_file():
        pytest.skip(f"test media not found: {path} (set REELFORGE_TEST_MEDIA)")
    return path


def run_cli(*args: str | Path, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, **kwargs
    )


def assert_refused(result: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit code 2, exactly one non-progress line on stderr, containing every needle."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and "━" not in ln]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def run_ffmpeg(*args: str | Path) -> None:
    subprocess.run(
        [ffmpeg.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *map(str, args)],
        check=True,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``reelforge serve`` started for real on a free loopback port (``env`` added)."""

    def __init__(self, root: Path, server: str = "granian", env: dict | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [*CLI, "serve", str(root), "--port", str(self.port), "--server", server],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(self.proc.stderr.read())
            try:
                httpx.get(self.base + "/", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def stop(self) -> str:
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        return out


def raw_status(port: int, request: bytes) -> int:
    """Send ``request`` byte for byte (no client normalisation); the status, or 0 when the
    server closed the connection without answering."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        head = sock.recv(64).decode("latin-1")
    return int(head.split()[1]) if head.startswith("HTTP/") else 0


def publish_json(src: Path, out: Path, *extra: str) -> dict:
    result = run_cli("publish", src, "-o", out, "--preset", "fast", "--json", *extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# Session fixtures below are built once per run (shared by xdist workers): tests only read them.


@pytest.fixture(scope="session")
def ladder_file(tmp_path_factory) -> Path:
    def build(folder: Path) -> None:
        (folder / "ladder.json").write_text(json.dumps({"rungs": TEST_LADDER}))

    folder, _ = built_once(tmp_path_factory, "ladder", build)
    return folder / "ladder.json"


@pytest.fixture(scope="session")
def talk_source(tmp_path_factory) -> Path:
    """A 720p talking head with AAC audio, looped to about 11.6 s (stream copy)."""
    src = media("video/obama_weekly_answers.mp4")

    def build(folder: Path) -> None:
        run_ffmpeg("-stream_loop", "2", "-i", src, "-c", "copy", folder / "talk.mp4")

    folder, _ = built_once(tmp_path_factory, "src", build)
    return folder / "talk.mp4"


@pytest.fixture(scope="session")
def talk(tmp_path_factory, talk_source, ladder_file) -> tuple[Path, dict]:
    """The talking head published with a 4-rung ladder, 4 s segments, VMAF on."""

    def build(folder: Path) -> dict:
        return publish_json(talk_source, folder / "talk", "--ladder", ladder_file)

    folder, report = built_once(tmp_path_factory, "pub-talk", build)
    return folder / "talk", report


@pytest.fixture(scope="session")
def scenes(tmp_path_factory) -> tuple[Path, dict]:
    """A film clip with shot cuts and no audio, default ladder, 2 s segments."""
    src = media("video/tears_of_steel_360p_10s.mp4")

    def build(folder: Path) -> dict:
        return publish_json(src, folder / "scenes", "--segment-duration", "2", "--no-quality")

    folder, report = built_once(tmp_path_factory, "pub-scenes", build)
    return folder / "scenes", report
