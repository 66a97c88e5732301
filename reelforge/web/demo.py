"""``make demo``: the service with a sample published and a sample story made.

Contract: ``python -m reelforge.web.demo --data DIR [--port P]`` starts ``reelforge web``
on DIR, and on first use sends it, through its own API, a 12 s clip made from ffmpeg's test
sources (uploaded over tus and published) and a two-line story voiced by the offline voice
over Grace Hopper's portrait (the picture matplotlib ships as sample data). It prints the
URL and an admin token once both are ready (their progress on stderr meanwhile; a video
that fails ends the demo with its error, exit 1), then serves until Ctrl-C. Nothing is
downloaded.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

STORY = """\
title: The Demo
cast:
  S1: {name: Grace, face: faces/grace.jpg, voice: {backend: espeak, voice: en-us+f3}}
scenes:
  - script: scenes/01.txt
publish: {preset: fast}
"""
SCRIPT = "[S1] Welcome to ReelForge. (laughs) This story was written, voiced and published by one pipeline.\n"  # noqa: E501


def _token(data: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "reelforge.cli", "tokens", "create", "demo",
                          "--data", str(data), "--scope", "admin", "--json"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(out.stdout)["token"]


def _upload(client: httpx.Client, path: Path) -> str:
    """One tus creation-with-upload request: the whole file in the creating POST."""
    meta = f"filename {base64.b64encode(path.name.encode()).decode()},filetype " + \
        base64.b64encode(b"video/mp4").decode()  # fmt: skip
    body = path.read_bytes()
    r = client.post("/api/uploads", content=body, headers={
        "Tus-Resumable": "1.0.0", "Upload-Length": str(len(body)), "Upload-Metadata": meta,
        "Content-Type": "application/offset+octet-stream"})  # fmt: skip
    r.raise_for_status()
    location = r.headers["location"]
    if int(r.headers.get("upload-offset", "0")) < len(body):
        client.patch(location, content=body, headers={
            "Tus-Resumable": "1.0.0", "Upload-Offset": r.headers.get("upload-offset", "0"),
            "Content-Type": "application/offset+octet-stream"}).raise_for_status()  # fmt: skip
    return location


def seed(base: str, token: str) -> list[str]:
    """Send the sample clip and the sample story (once: not when videos exist already);
    returns the ids of the videos sent (none when the folder had videos)."""
    import matplotlib.cbook

    from reelforge.media.sample import make_sample

    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                      timeout=120) as client:  # fmt: skip
        if client.get("/api/videos").json()["data"]:
            return []
        with tempfile.TemporaryDirectory() as tmp:
            clip = make_sample(Path(tmp) / "sample.mp4", duration=12)
            url = _upload(client, clip)
        clip_video = client.post("/api/videos", json={"upload": url, "title": "Test pattern",
                                                      "private": False})  # fmt: skip
        clip_video.raise_for_status()
        face = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
        files = [("story", ("story.yaml", STORY.encode(), "text/yaml")),
                 ("files", ("faces/grace.jpg", face.read_bytes(), "image/jpeg")),
                 ("files", ("scenes/01.txt", SCRIPT.encode(), "text/plain"))]  # fmt: skip
        story = client.post("/api/stories", files=files, data={"private": "true"})
        story.raise_for_status()
        return [clip_video.json()["id"], story.json()["id"]]


def wait_ready(base: str, token: str, ids: list[str], timeout: float = 900.0) -> None:
    """Wait until every video in ``ids`` is ``ready``, saying on stderr what each is doing;
    a video that errors (or a wait past ``timeout`` s) is a ``SystemExit`` naming it."""
    deadline = time.monotonic() + timeout
    said: dict[str, tuple] = {}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                      timeout=30) as client:  # fmt: skip
        pending = list(ids)
        while pending:
            for video_id in list(pending):
                video = client.get(f"/api/videos/{video_id}").json()
                state = (video["status"], video.get("step"), round(video.get("progress", 0), 1))
                if state != said.get(video_id):
                    said[video_id] = state
                    print(
                        f"{video['title']}: {video['status']} {video.get('step') or ''} "
                        f"{video.get('progress', 0):.0%}",
                        file=sys.stderr,
                        flush=True,
                    )
                if video["status"] == "ready":
                    pending.remove(video_id)
                elif video["status"] == "errored":
                    error = (video.get("error") or {}).get("message", "no error recorded")
                    raise SystemExit(f"demo: {video['title']} failed: {error}")
            if time.monotonic() > deadline:
                raise SystemExit(f"demo: not ready after {timeout:.0f} s: {', '.join(pending)}")
            time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("sample/web"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args()
    proc = subprocess.Popen([sys.executable, "-m", "reelforge.cli", "web", "--data",
                             str(args.data), "--port", str(args.port)],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    line = proc.stdout.readline()
    if not line.startswith("ReelForge at "):
        sys.exit(proc.wait() or 1)
    # the server's later output passes through: left in the pipe, it filled it and the
    # server blocked (and then could not stop)
    threading.Thread(target=shutil.copyfileobj, args=(proc.stdout, sys.stdout),
                     daemon=True).start()  # fmt: skip
    base = f"http://127.0.0.1:{args.port}"
    token = _token(args.data)
    try:
        wait_ready(base, token, seed(base, token))
    except BaseException:
        proc.terminate()
        proc.wait()
        raise
    print(f"ReelForge demo at {base}/ : sign in with the token {token}\n"
          "(the sample clip is published and the sample story made)", flush=True)  # fmt: skip
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
