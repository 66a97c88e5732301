"""Benchmark: the origin against nginx on loopback, and an nginx edge under a Zipf replay.

In one run:

1. throughput and latency (wrk, 2 threads, 16 connections, 10 s each) for 1 MB segment
   GETs and for 64 KB range GETs, from ``reelforge serve`` on granian and on uvicorn, from
   nginx with the origin configuration ``reelforge cdn nginx --serve`` writes (public
   ``/media/`` paths and signed ``/p/<token>/`` paths, the app behind it on granian) and
   from plain nginx serving the same folder as static files; ratios against plain nginx;
2. an nginx edge configured by ``reelforge cdn nginx`` in front of the origin: a Zipf
   replay of viewer sessions over several titles; edge hit ratio after warm-up, and the
   origin's offload (share of bytes the viewers got that the origin did not send).

Targets: ``reelforge serve`` (granian, 2 workers) >= 0.5x plain nginx for segments and
>= 0.25x for 64 KB ranges; the nginx origin >= 0.9x plain nginx for both, public and
signed; edge hit ratio >= 98% after warm-up. The machine may be shared: ratios within one
run are what to compare. Needs ``wrk`` and ``nginx`` (Debian: ``apt-get
install wrk nginx-light``).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urljoin

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from reelforge.delivery.signing import make_token  # noqa: E402
from reelforge.delivery.versions import new_version_name, switch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import wrk_output  # noqa: E402

CLI = [sys.executable, "-m", "reelforge.cli"]
FILES = 20
KEY = "bench-playback-key"
LUA = """
counter = 0
math.randomseed(42)
request = function()
  counter = counter + 1
  local path = string.format("{prefix}/bench/seg-%05d-0123456789.m4s", counter % {files})
  local headers = {{}}
  if {ranged} then
    local start = math.random(0, 1048576 - 65536)
    headers["Range"] = string.format("bytes=%d-%d", start, start + 65535)
  end
  return wrk.format("GET", path, headers)
end
"""
STATIC_NGINX = """
{user}worker_processes auto;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 100000;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    server {{
        listen 127.0.0.1:{port};
        location /media/ {{ alias {root}/; }}
    }}
}}
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str) -> None:
    for _ in range(200):
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def start_origin(root: Path, server: str, workers: int = 1) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [*CLI, "serve", str(root), "--port", str(port), "--server", server,
           "--workers", str(workers)]  # fmt: skip
    env = {**os.environ, "REELFORGE_PLAYBACK_KEY": KEY}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env)
    base = f"http://127.0.0.1:{port}"
    wait_up(base + "/")
    return proc, base


def start_nginx(conf: Path, prefix: Path) -> subprocess.Popen:
    return subprocess.Popen(["nginx", "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
                            stderr=subprocess.DEVNULL)  # fmt: skip


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        print(f"   (pid {proc.pid} ignored SIGTERM for 15 s; killed)")
        proc.kill()
        proc.wait()


def wrk(base: str, prefix: str, ranged: bool, seconds: int, work: Path) -> dict:
    script = work / f"bench-{'range' if ranged else 'full'}.lua"
    script.write_text(LUA.format(prefix=prefix, files=FILES, ranged="true" if ranged else "false"))
    out = subprocess.run(["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "-s", str(script),
                          base], capture_output=True, text=True, check=True).stdout  # fmt: skip
    return wrk_output.parse(out)


def start_nginx_origin(root: Path, work: Path) -> tuple[list[subprocess.Popen], str]:
    """nginx with the origin configuration, the app (granian, 1 worker) behind it."""
    app, app_base = start_origin(root, "granian")
    prefix = work / "nginx-origin"
    port = free_port()
    conf = prefix / "nginx.conf"
    user = ["--user", "root"] if os.geteuid() == 0 else []
    subprocess.run([*CLI, "cdn", "nginx", "--serve", str(root), "-o", str(conf), "--origin",
                    app_base.removeprefix("http://"), "--listen", f"127.0.0.1:{port}",
                    "--prefix", str(prefix), *user], check=True, capture_output=True)  # fmt: skip
    nginx = start_nginx(conf, prefix)
    base = f"http://127.0.0.1:{port}"
    wait_up(base + "/media/bench/seg-00000-0123456789.m4s")
    return [nginx, app], base


def throughput(work: Path, seconds: int) -> None:
    root = work / "root"
    (root / "bench").mkdir(parents=True)
    rng = random.Random(1)
    for i in range(FILES):
        (root / "bench" / f"seg-{i:05d}-0123456789.m4s").write_bytes(rng.randbytes(1 << 20))
    (root / "bench" / "master.m3u8").write_text("#EXTM3U\n")  # a stream: tokens may name it
    signed = f"/p/{make_token(KEY.encode(), 'bench', int(time.time()) + 3600)}"
    prefix = work / "static"
    (prefix / "tmp").mkdir(parents=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read the files
    conf.write_text(STATIC_NGINX.format(user=user, prefix=prefix, port=port, root=root))
    nginx = start_nginx(conf, prefix)
    nginx_base = f"http://127.0.0.1:{port}"
    wait_up(nginx_base + "/media/bench/seg-00000-0123456789.m4s")
    results: dict[str, dict] = {}
    try:
        for ranged in (False, True):
            kind = "range 64 KB" if ranged else "1 MB GET"
            results[f"nginx {kind}"] = wrk(nginx_base, "/media", ranged, seconds, work)
            procs, base = start_nginx_origin(root, work)
            try:
                assert httpx.get(f"{base}{signed}/bench/master.m3u8").status_code == 200
                results[f"origin-nginx {kind}"] = wrk(base, "/media", ranged, seconds, work)
                results[f"origin-signed {kind}"] = wrk(base, signed, ranged, seconds, work)
            finally:
                for proc in procs:
                    stop(proc)
            for server, workers in (("granian", 1), ("granian", 2), ("uvicorn", 2)):
                proc, base = start_origin(root, server, workers)
                try:
                    name = f"{server}x{workers} {kind}"
                    results[name] = wrk(base, "/media", ranged, seconds, work)
                finally:
                    stop(proc)
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
    print(f"1. loopback throughput (wrk -t2 -c16 -d{seconds}s; {FILES} files of 1 MB)")
    print(f"   {'server':<26}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'vs nginx':>10}")
    for name, r in results.items():
        kind = name.split(" ", 1)[1]
        ratio = r["rps"] / results[f"nginx {kind}"]["rps"]
        print(f"   {name:<26}{r['rps']:9.0f}{r['p50']:9.2f}{r['p99']:9.2f}{ratio:10.2f}"
              + (f"  ({r['errors']} errors)" if r["errors"] else ""))  # fmt: skip
    targets = [("granianx2", "1 MB GET", 0.5), ("granianx2", "range 64 KB", 0.25)]
    targets += [(name, kind, 0.9) for name in ("origin-nginx", "origin-signed")
                for kind in ("1 MB GET", "range 64 KB")]  # fmt: skip
    for name, kind, target in targets:
        ratio = results[f"{name} {kind}"]["rps"] / results[f"nginx {kind}"]["rps"]
        print(f"   target: {name} {kind} >= {target:.2f}x nginx: {ratio:.2f}x "
              f"{'OK' if ratio >= target else 'MISSED'}")  # fmt: skip


def publish_sample(work: Path) -> Path:
    clip = work / "clip.mp4"
    subprocess.run([*CLI, "sample", str(clip), "--duration", "12"], check=True,
                   capture_output=True)  # fmt: skip
    out = work / "published"
    subprocess.run([*CLI, "publish", str(clip), "-o", str(out), "--preset", "fast",
                    "--no-quality", "--no-thumbnails", "--no-fallback", "--segment-duration",
                    "2", "--json"], check=True, capture_output=True)  # fmt: skip
    return out


def replay(work: Path, titles: int, sessions: int, warmup: int) -> None:
    published = publish_sample(work)
    root = work / "titles"
    for i in range(titles):
        version = new_version_name()
        shutil.copytree(published, root / f"title{i}" / version)
        switch(root / f"title{i}", version)
    origin, origin_base = start_origin(root, "granian")
    prefix = work / "edge"
    port = free_port()
    conf = prefix / "nginx.conf"
    user = ["--user", "root"] if os.geteuid() == 0 else []
    subprocess.run([*CLI, "cdn", "nginx", "-o", str(conf), "--origin",
                    origin_base.removeprefix("http://"), "--listen", f"127.0.0.1:{port}",
                    "--prefix", str(prefix), *user], check=True, capture_output=True)  # fmt: skip
    nginx = start_nginx(conf, prefix)
    base = f"http://127.0.0.1:{port}"
    wait_up(base + "/")
    served = ("HIT", "STALE", "UPDATING")
    rng = random.Random(3)
    weights = [1 / (k + 1) ** 1.1 for k in range(titles)]
    picks = rng.choices(range(titles), weights=weights, k=sessions)

    def session(args: tuple[int, int]) -> list[tuple[str, int]]:
        n, title = args
        local = random.Random(n)
        got = []
        with httpx.Client(timeout=30) as client:

            def get(url: str) -> str:
                r = client.get(url)
                got.append((r.headers.get("x-cache-status", ""), len(r.content)))
                return r.text if url.endswith(".m3u8") else ""

            master_url = f"{base}/media/title{title}/master.m3u8"
            master = get(master_url)
            variants = [ln for ln in master.splitlines() if ln and not ln.startswith("#")]
            audio = re.findall(r'TYPE=AUDIO.*URI="([^"]+)"', master)
            rung = local.choices(variants, weights=[2**i for i in range(len(variants))])[0]
            for playlist in [rung, *audio]:
                url = urljoin(master_url, playlist)
                text = get(url)
                items = re.findall(r'#EXT-X-MAP:URI="([^"]+)"', text)
                items += [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
                for item in items:
                    get(urljoin(url, item))
        return got

    try:
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            warm = list(pool.map(session, enumerate(picks[:warmup])))
            rest = list(pool.map(session, enumerate(picks[warmup:], start=warmup)))
        elapsed = time.monotonic() - started
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        stop(origin)
    after = [g for s in rest for g in s]
    hits = sum(1 for status, _ in after if status in served)
    everything = [g for s in warm + rest for g in s]
    total_bytes = sum(n for _, n in everything)
    origin_bytes = sum(n for status, n in everything if status not in served)
    ratio = hits / len(after)
    print(f"\n2. nginx edge, Zipf replay: {titles} titles, {sessions} sessions ({warmup} warm-up), "
          f"{len(everything)} requests in {elapsed:.1f} s")  # fmt: skip
    print(f"   edge hit ratio after warm-up {ratio:.2%} (target >= 98%: "
          f"{'OK' if ratio >= 0.98 else 'MISSED'})")  # fmt: skip
    print(f"   origin offload (bytes viewers got that the origin did not send), whole run: "
          f"{1 - origin_bytes / total_bytes:.2%} of {total_bytes / 1e6:.0f} MB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--titles", type=int, default=8)
    parser.add_argument("--sessions", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--only", choices=("throughput", "replay"))
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed: apt-get install wrk nginx-light")
    with tempfile.TemporaryDirectory(prefix="rf-origin-bench-") as tmp:
        work = Path(tmp)
        if args.only != "replay":
            throughput(work, args.seconds)
        if args.only != "throughput":
            replay(work, args.titles, args.sessions, args.warmup)


if __name__ == "__main__":
    main()
