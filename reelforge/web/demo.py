"""``make demo``: the service with a sample published and a sample story made.

Contract: ``python -m reelforge.web.demo --data DIR [--port P]`` starts ``reelforge web``
on DIR, and on first use sends it, through its own API, a 12 s clip made from ffmpeg's test
sources (uploaded over tus and published) and a two-line story voiced by the offline voice
over Grace Hopper's portrait (the picture matplotlib ships as sample data). It prints the
URL and an admin token, then serves until Ctrl-C. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
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


def seed(base: str, token: str) -> None:
    """Send the sample clip and the sample story (once: not when videos exist already)."""
    import matplotlib.cbook

    from reelforge.media.sample import make_sample

    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                      timeout=120) as client:  # fmt: skip
        if client.get("/api/videos").json()["data"]:
            return
        with tempfile.TemporaryDirectory() as tmp:
            clip = make_sample(Path(tmp) / "sample.mp4", duration=12)
            url = _upload(client, clip)
        client.post("/api/videos", json={"upload": url, "title": "Test pattern",
                                         "private": False}).raise_for_status()  # fmt: skip
        face = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
        files = [("story", ("story.yaml", STORY.encode(), "text/yaml")),
                 ("files", ("faces/grace.jpg", face.read_bytes(), "image/jpeg")),
                 ("files", ("scenes/01.txt", SCRIPT.encode(), "text/plain"))]  # fmt: skip
        client.post("/api/stories", files=files, data={"private": "true"}).raise_for_status()


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
    base = f"http://127.0.0.1:{args.port}"
    token = _token(args.data)
    seed(base, token)
    print(f"ReelForge demo at {base}/ : sign in with the token {token}\n"
          "(the sample clip is published; the sample story is being made: watch its page)",
          flush=True)  # fmt: skip
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
