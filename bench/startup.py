"""Benchmark: time to first frame and stalls in headless Chromium behind a slow link.

A 30 s 720p clip (Big Buck Bunny, looped, H.264 at 2.5 Mb/s, moov at the end as many
uploads are) is published with ``reelforge publish`` and served by ``reelforge serve``.
Chromium (Debian's, driven by Playwright) loads each case through a bottleneck link the
bench emulates on loopback: one downstream rate shared by every connection, a fixed
delay each way, and a fresh link for every run (bytes queued for a closed page never
slow the next one). DevTools throttling is not used: it does not slow media loads.

Cases: the uploaded MP4, the fast-start MP4 fallback, a bare page with hls.js defaults,
and our player page (hls.js itself taken from disk, as a returning viewer's cache would).
Profiles: 1.6 Mb/s with 150 ms RTT, 9 Mb/s with 60 ms RTT, and 9 Mb/s
falling to 1.6 Mb/s halfway. Per case: time to first frame (requestVideoFrameCallback),
stall count and stalled time, mean played height and bitrate, rendition switches;
medians over ``--runs``. Writes a plot of played bitrate over time per case.

Targets (from the issue): our page <= 0.6 s at 1.6 Mb/s and <= 0.3 s at 9 Mb/s with no
stall and the top rung within 6 s at 9 Mb/s; bare hls.js <= 1.0 s / 0.45 s; falling link:
at most one stall, shorter than 1 s. Needs ``chromium`` and ``playwright``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from reelforge.media import ffmpeg  # noqa: E402

CLI = [sys.executable, "-m", "reelforge.cli"]
QUEUE_S = 0.05  # the bottleneck's buffer, in seconds of data at the link rate
MEDIA = Path(os.environ.get("REELFORGE_TEST_MEDIA", ROOT.parent / "shared" / "media"))
PROFILES = {"1.6M/150ms": (1.6e6, 0.150, None), "9M/60ms": (9e6, 0.060, None),
            "9M->1.6M/60ms": (9e6, 0.060, 1.6e6)}  # fmt: skip
INSTRUMENT = """
window.__m = {first: null, stalls: 0, stalled: 0, stallStart: null, samples: []};
document.addEventListener('DOMContentLoaded', () => {
  const v = document.querySelector('video');
  const m = window.__m;
  v.requestVideoFrameCallback(() => { m.first = performance.now(); });
  v.addEventListener('waiting', () => {
    if (m.first !== null && m.stallStart === null) { m.stallStart = performance.now(); m.stalls++; }
  });
  v.addEventListener('playing', () => {
    if (m.stallStart === null) return;
    m.stalled += performance.now() - m.stallStart;
    m.stallStart = null;
  });
  setInterval(() => {
    const h = window.reelforgeHls || window.bareHls;
    const lvl = h && h.currentLevel >= 0 ? h.levels[h.currentLevel] : null;
    m.samples.push([performance.now(), v.currentTime, v.videoHeight, lvl ? lvl.bitrate : null,
                    h ? h.currentLevel : null]);
  }, 250);
});
"""
BARE = """<!doctype html><video muted autoplay playsinline></video>
<script src="/player/hls.js/dist/hls.min.js"></script><script>
const hls = new Hls(); window.bareHls = hls; hls.loadSource("master.m3u8");
hls.attachMedia(document.querySelector('video'));</script>"""
MP4 = """<!doctype html><video muted autoplay playsinline src="{src}"></video>"""


class Link:
    """A bottleneck on loopback: shared downstream rate, fixed delay each way."""

    def __init__(self, target: int, rate: float, rtt: float, rate_after: float | None,
                 switch_at: float) -> None:  # fmt: skip
        self.target, self.rate, self.delay = target, rate, rtt / 2
        self.rate_after, self.switch_at = rate_after, switch_at
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.started = time.monotonic()
        self.free = 0.0  # when the shared downstream link is next idle (loop time)
        self.writers: set = set()
        server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0))  # fmt: skip
        self.server = server
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    def _rate(self) -> float:
        late = self.rate_after and time.monotonic() - self.started >= self.switch_at
        return self.rate_after if late else self.rate

    def _later(self, writer: asyncio.StreamWriter, data: bytes, at: float) -> None:
        def deliver() -> None:
            if not writer.is_closing():
                writer.write(data)

        self.loop.call_at(at, deliver)

    async def _handle(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        last = [0.0, 0.0]
        self.writers.update((writer, up_writer))

        async def pump(src, dst, downstream: bool) -> None:
            try:
                while True:
                    if downstream:  # a bottleneck buffer of QUEUE_S: backpressure beyond it
                        while self.free - self.loop.time() > QUEUE_S and not dst.is_closing():
                            await asyncio.sleep(0.005)
                        if dst.is_closing():
                            break
                    data = await src.read(16384)
                    if not data:
                        break
                    now = self.loop.time()
                    if downstream:
                        self.free = max(self.free, now) + len(data) * 8 / self._rate()
                        at = self.free + self.delay
                    else:
                        at = now + self.delay
                    at = max(at, last[downstream])  # keep each direction in order
                    last[downstream] = at
                    self._later(dst, data, at)
            except (ConnectionError, OSError):
                pass
            finally:
                if not self.loop.is_closed() and self.loop.is_running():
                    self.loop.call_at(max(last[downstream], self.loop.time()) + 0.001,
                                      lambda: dst.is_closing() or dst.close())  # fmt: skip

        await asyncio.gather(pump(reader, up_writer, False), pump(up_reader, writer, True))

    def close(self) -> None:
        def stop() -> None:
            self.server.close()
            for writer in list(self.writers):
                writer.close()  # queued bytes for a closed page die with the link
            self.loop.stop()

        self.loop.call_soon_threadsafe(stop)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(work: Path) -> tuple[Path, str, str]:
    src = MEDIA / "video" / "bbb_720p_2s_h264.mp4"
    upload = work / "root" / "upload.mp4"
    upload.parent.mkdir(parents=True)
    ffmpeg.run(["-stream_loop", "14", "-i", src, "-t", "30", "-c:v", "libx264", "-b:v", "2500k",
                "-maxrate", "3000k", "-bufsize", "5000k", "-preset", "veryfast", "-c:a", "aac",
                "-b:a", "128k", upload], subject=src)  # fmt: skip
    out = work / "root" / "stream"
    subprocess.run([*CLI, "publish", str(upload), "-o", str(out), "--preset", "fast",
                    "--no-quality", "--json"], check=True, capture_output=True)  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    fallback = report["files"]["fallback"]
    (out / "bare.html").write_text(BARE)
    (work / "root" / "upload.html").write_text(MP4.format(src="upload.mp4"))
    (out / "faststart.html").write_text(MP4.format(src=fallback))
    return work / "root", "stream", fallback


def run_case(browser, origin_port: int, path: str, profile: tuple, seconds: float) -> dict:
    rate, rtt, after = profile
    link = Link(origin_port, rate, rtt, after, seconds / 2)
    try:
        context = browser.new_context()
        page = context.new_page()
        page.add_init_script(INSTRUMENT)
        # hls.js is a static library a returning viewer has cached: served from disk,
        # so every case measures the media, not the player's download.
        page.route("**/player/**", lambda route: route.fulfill(
            path=str(ROOT / "node_modules" / route.request.url.split("/player/", 1)[1]),
            headers={"Content-Type": "text/javascript"}))  # fmt: skip
        page.goto(f"http://127.0.0.1:{link.port}{path}", wait_until="commit")
        page.wait_for_timeout(seconds * 1000)
        m = page.evaluate("window.__m")
        context.close()
    finally:
        link.close()
    first = m["first"] / 1000 if m["first"] else None
    played = [s for s in m["samples"] if first and s[0] / 1000 >= first]
    heights = [s[2] for s in played if s[2]]
    rates = [s[3] for s in played if s[3]]
    levels = [s[4] for s in played if s[4] is not None]
    stalled = m["stalled"] + ((m["samples"][-1][0] - m["stallStart"]) if m["stallStart"] else 0)
    return {"ttff": first, "stalls": m["stalls"], "stalled_s": stalled / 1000,
            "height": statistics.mean(heights) if heights else 0,
            "kbps": statistics.mean(rates) / 1000 if rates else None,
            "switches": sum(1 for a, b in itertools.pairwise(levels) if a != b),
            "top_at": next((s[0] / 1000 for s in played if s[2] >= 720), None),
            "series": [(s[0] / 1000, s[3]) for s in played]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--plot", type=Path, default=Path("startup-bitrate.svg"))
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("chromium is needed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="rf-startup-") as tmp:
        root, stream, _ = prepare(Path(tmp))
        port = free_port()
        origin = subprocess.Popen([*CLI, "serve", str(root), "--port", str(port)],
                                  stdout=subprocess.DEVNULL)  # fmt: skip
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        cases = {"uploaded MP4": "/media/upload.html",
                 "fast-start MP4": f"/media/{stream}/faststart.html",
                 "hls.js defaults": f"/media/{stream}/bare.html",
                 "our player page": f"/watch/{stream}"}  # fmt: skip
        results: dict = {}
        try:
            with sync_playwright() as p:
                autoplay = ["--autoplay-policy=no-user-gesture-required"]
                browser = p.chromium.launch(executable_path=chromium, args=autoplay)
                for pname, profile in PROFILES.items():
                    for cname, path in cases.items():
                        runs = [run_case(browser, port, path, profile, args.seconds)
                                for _ in range(args.runs)]  # fmt: skip
                        results[(pname, cname)] = runs
                browser.close()
        finally:
            origin.terminate()
            origin.wait(timeout=15)
    print(f"medians of {args.runs} runs, {args.seconds:g} s each")
    print(f"{'link':<15}{'case':<18}{'first frame':>12}{'stalls':>7}{'stalled':>9}"
          f"{'height':>8}{'kb/s':>7}{'switches':>9}{'720p at':>9}")  # fmt: skip

    def med(runs: list[dict], key: str) -> float | None:
        vals = [r[key] for r in runs if r[key] is not None]
        return statistics.median(vals) if vals else None

    def fmt(v: float | None, spec: str) -> str:
        return format(v, spec) if v is not None else "-"

    for (pname, cname), runs in results.items():
        print(f"{pname:<15}{cname:<18}{fmt(med(runs, 'ttff'), '11.2f')}s"
              f"{fmt(med(runs, 'stalls'), '7.0f')}{fmt(med(runs, 'stalled_s'), '8.1f')}s"
              f"{fmt(med(runs, 'height'), '8.0f')}{fmt(med(runs, 'kbps'), '7.0f')}"
              f"{fmt(med(runs, 'switches'), '9.0f')}"
              f"{fmt(med(runs, 'top_at'), '8.1f')}s")  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PROFILES), figsize=(5 * len(PROFILES), 3.5), sharey=True)
    for ax, pname in zip(axes, PROFILES, strict=True):
        for cname in ("hls.js defaults", "our player page"):
            series = results[(pname, cname)][0]["series"]
            ax.step([t for t, _ in series], [(b or 0) / 1000 for _, b in series], label=cname)
        ax.set_title(pname)
        ax.set_xlabel("s since navigation")
    axes[0].set_ylabel("played rung, kb/s")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(args.plot)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
