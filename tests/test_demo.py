"""``make demo``: the service starts, publishes its sample clip and makes its sample story
through its own API, and only then prints the URL and a token that opens both."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading

import httpx
import m3u8
import pytest
from conftest import ROOT, free_port


@pytest.mark.timing  # stopped by Ctrl-C within 30 s; heavy: runs alone
def test_demo_prints_its_url_once_the_samples_are_ready(tmp_path):
    port = free_port()
    env = {**os.environ, "REELFORGE_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "reelforge.web.demo", "--data",
                             str(tmp_path / "web"), "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env)  # fmt: skip
    try:
        line = proc.stdout.readline()
        match = re.match(r"ReelForge demo at (http://\S+)/ : sign in with the token (\S+)", line)
        assert match, (line, proc.poll())
        # the server's log follows on stdout: keep reading it, as a terminal would
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        base, token = match.groups()
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as c:
            videos = c.get("/api/videos").json()["data"]
            assert sorted(v["kind"] for v in videos) == ["story", "video"], videos
            assert {v["status"] for v in videos} == {"ready"}
            for video in videos:
                master = c.get(video["playback"]["hls"])
                assert master.status_code == 200
                assert m3u8.loads(master.text).playlists
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
