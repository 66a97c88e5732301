"""Benchmark: the service (`reelforge web`) against plain baselines, in one run.

1. Upload throughput: a 200 MB file sent with tus (tuspy, 16 MB chunks) against the same
   bytes sent over one loopback TCP connection into a file (sendfile on one side, recv and
   write on the other: a plain file copy on loopback). Ratio of rates; median of 3.
2. API latency: `GET /api/videos/{id}` from 50 concurrent keep-alive clients (wrk for 10 s
   where it is installed, else 2,000 requests from httpx, whose own CPU then counts): p50
   and p99, for granian and uvicorn (the service's two servers). Bound: p99 under 250 ms.
3. Time from the last upload byte to `ready` (the stream playable), against `reelforge
   publish` of the same file from the command line (process start until its output is
   playable), same options, alternating, median of 3. Target: <= 1.05.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_web import Web, follow  # noqa: E402  (the tests' own server driver)
from tusclient import client as tus  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import wrk_output  # noqa: E402

CLI = [sys.executable, "-m", "reelforge.cli"]
MEDIA = Path(os.environ.get("REELFORGE_TEST_MEDIA", ROOT.parent / "shared" / "media"))
OPTIONS = {"preset": "balanced", "quality": True}  # publish's defaults, both ways


def tcp_copy(path: Path, target: Path) -> float:
    """Seconds to send ``path`` over one loopback connection into ``target``."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def sink() -> None:
        conn, _ = listener.accept()
        with conn, target.open("wb") as out:
            while chunk := conn.recv(1 << 20):
                out.write(chunk)

    thread = threading.Thread(target=sink)
    thread.start()
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock, path.open("rb") as f:
        sock.sendfile(f)
    thread.join()
    seconds = time.perf_counter() - t0
    listener.close()
    return seconds


def tus_send(web: Web, token: str, path: Path) -> tuple[float, str]:
    headers = {"Authorization": f"Bearer {token}"}
    uploader = tus.TusClient(f"{web.base}/api/uploads", headers=headers).uploader(
        str(path), chunk_size=16 << 20, metadata={"filename": path.name}
    )
    t0 = time.perf_counter()
    uploader.upload()
    return time.perf_counter() - t0, uploader.url


def upload_throughput(web: Web, token: str, work: Path) -> dict:
    blob = work / "blob.bin"
    with blob.open("wb") as f:
        for _ in range(200):
            f.write(os.urandom(1 << 20))
    size = blob.stat().st_size
    plain, ours = [], []
    for n in range(3):
        plain.append(tcp_copy(blob, work / f"copy{n}.bin"))
        (work / f"copy{n}.bin").unlink()
        seconds, url = tus_send(web, token, blob)
        ours.append(seconds)
        httpx.delete(url, headers={"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"})
    blob.unlink()
    mb = size / 1e6
    return {"mb": mb, "plain_mb_s": mb / statistics.median(plain),
            "tus_mb_s": mb / statistics.median(ours),
            "ratio": statistics.median(plain) / statistics.median(ours)}  # fmt: skip


async def _latency(base: str, token: str, video_id: str, clients: int, total: int) -> list:
    times: list[float] = []
    left = total

    async def one(client: httpx.AsyncClient) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            t0 = time.perf_counter()
            r = await client.get(f"/api/videos/{video_id}")
            times.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30,
                                 headers=auth) as client:  # fmt: skip
        await asyncio.gather(*(one(client) for _ in range(clients)))
    return times


def _wrk_latency(base: str, token: str, video_id: str, clients: int, seconds: int) -> dict:
    """wrk (one thread, ``clients`` connections) for ``seconds``: p50, p99 and req/s."""
    out = subprocess.run(["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--latency",
                          "-H", f"Authorization: Bearer {token}",
                          f"{base}/api/videos/{video_id}"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    figures = wrk_output.parse(out)
    if figures["errors"]:
        raise SystemExit(f"wrk saw errors:\n{out}")
    return {"p50_ms": figures["p50"], "p99_ms": figures["p99"], "rps": figures["rps"],
            "client": "wrk"}  # fmt: skip


def api_latency(data: Path, server: str, video_id: str, token: str) -> dict:
    """Latency under 50 clients: wrk where it is installed (a C load generator, so the
    client's own cost stays out of the figures), else 2,000 requests from httpx."""
    web = Web(data, server=server).start()
    try:
        if shutil.which("wrk"):
            return {"server": server, **_wrk_latency(web.base, token, video_id, 50, 10)}
        times = asyncio.run(_latency(web.base, token, video_id, 50, 2000))
    finally:
        web.stop()
    times.sort()
    return {"server": server, "p50_ms": 1000 * times[len(times) // 2],
            "p99_ms": 1000 * times[int(len(times) * 0.99)],
            "rps": len(times) / sum(times) * 50, "client": "httpx"}  # fmt: skip


def cli_to_playable(src: Path, out: Path) -> float:
    """Seconds from starting `reelforge publish` until its output is playable."""
    args = ["--preset", OPTIONS["preset"], "--quality" if OPTIONS["quality"] else "--no-quality"]
    t0 = time.perf_counter()
    proc = subprocess.Popen([*CLI, "publish", str(src), "-o", str(out), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    while not (out / "master.m3u8").is_file():
        if proc.poll() is not None and not (out / "master.m3u8").is_file():
            raise SystemExit("publish failed")
        time.sleep(0.02)
    seconds = time.perf_counter() - t0
    proc.wait()
    return seconds


def web_to_ready(web: Web, token: str, src: Path) -> float:
    """Seconds from the upload's last byte to the video's `ready` event."""
    headers = {"Authorization": f"Bearer {token}"}
    uploader = tus.TusClient(f"{web.base}/api/uploads", headers=headers).uploader(
        str(src), chunk_size=64 << 20, metadata={"filename": src.name}
    )
    uploader.upload()
    t0 = time.perf_counter()
    r = httpx.post(f"{web.base}/api/videos", headers=headers,
                   json={"upload": uploader.url, "publish": OPTIONS})  # fmt: skip
    events = follow(web, token, r.json()["id"])
    assert events[-1]["status"] == "ready", events[-1]
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON.")
    parser.add_argument("--clip", type=Path, default=MEDIA / "video/tears_of_steel_360p_10s.mp4")
    args = parser.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        work = Path(tmp)
        web = Web(work / "data").start()
        token = web.token("admin", "bench")
        try:
            results["upload"] = upload_throughput(web, token, work)
            ready, cli = [], []
            for n in range(3):
                cli.append(cli_to_playable(args.clip, work / f"cli{n}"))
                ready.append(web_to_ready(web, token, args.clip))
            web_s, cli_s = statistics.median(ready), statistics.median(cli)
            results["ready"] = {"web_s": web_s, "cli_s": cli_s, "runs_web": ready,
                                "runs_cli": cli, "ratio": web_s / cli_s}  # fmt: skip
            video_id = httpx.get(f"{web.base}/api/videos", headers={
                "Authorization": f"Bearer {token}"}).json()["data"][0]["id"]  # fmt: skip
        finally:
            web.stop()
        results["latency"] = [api_latency(work / "data", s, video_id, token)
                              for s in ("granian", "uvicorn")]  # fmt: skip
    if args.json:
        print(json.dumps(results, indent=2))
        return
    up = results["upload"]
    print(
        f"upload {up['mb']:.0f} MB: tus {up['tus_mb_s']:.0f} MB/s, plain loopback copy "
        f"{up['plain_mb_s']:.0f} MB/s -> {up['ratio']:.2f}x"
    )
    for lat in results["latency"]:
        bound = "OK" if lat["p99_ms"] < 250 else "over 250 ms"
        print(
            f"GET /api/videos/ID, 50 clients ({lat['client']}), {lat['server']}: p50 "
            f"{lat['p50_ms']:.1f} ms, "
            f"p99 {lat['p99_ms']:.1f} ms ({bound}), {lat['rps']:.0f} req/s"
        )
    r = results["ready"]
    verdict = "OK" if r["ratio"] <= 1.05 else "over the 1.05 target"
    print(
        f"last upload byte -> ready {r['web_s']:.2f} s; CLI publish -> playable "
        f"{r['cli_s']:.2f} s -> {r['ratio']:.3f}x ({verdict})"
    )


if __name__ == "__main__":
    main()
