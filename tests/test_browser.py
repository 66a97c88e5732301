"""The player page in a real headless Chromium (Debian's package, driven by Playwright)."""

from __future__ import annotations

import shutil

import pytest
from conftest import Server

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (.ci/run installs the Debian package)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM,
                              args=["--autoplay-policy=no-user-gesture-required"])  # fmt: skip
        yield b
        b.close()


def test_player_starts_plays_and_switches(browser, talk):
    out, report = talk
    server = Server(out)
    try:
        page = browser.new_page()
        fetched: list[str] = []
        page.on("request", lambda r: fetched.append(r.url))
        page.goto(server.base + "/")
        # the first frame is presented (requestVideoFrameCallback) and time moves on
        page.wait_for_function("document.getElementById('video').currentTime > 0.3",
                               timeout=30_000)  # fmt: skip
        frames = page.evaluate("""() => new Promise(resolve => document.getElementById('video')
            .requestVideoFrameCallback((now, meta) => resolve(meta.presentedFrames)))""")
        assert frames >= 1
        t1 = page.evaluate("document.getElementById('video').currentTime")
        page.wait_for_timeout(1500)
        t2 = page.evaluate("document.getElementById('video').currentTime")
        assert t2 > t1 + 0.5, (t1, t2)
        # start-up files came inlined in the page: no request for the master, the first
        # rung's playlist or its init segment
        assert not [u for u in fetched if u.endswith("/master.m3u8")], fetched
        low = next(r for r in report["renditions"] if r["kind"] == "video")
        assert not [u for u in fetched if f"/{low['name']}/" in u and u.endswith(".m3u8")]
        assert [u for u in fetched if u.endswith(".m4s")]
        # forcing a rung: the player switches and says so on the page
        levels = page.evaluate("window.reelforgeHls.levels.map(l => l.height)")
        assert levels == sorted(levels) and len(levels) == 4
        page.select_option("#levels", str(len(levels) - 1))
        page.wait_for_function(f"window.reelforgeHls.currentLevel === {len(levels) - 1}",
                               timeout=30_000)  # fmt: skip
        page.select_option("#levels", "0")
        page.wait_for_function("window.reelforgeHls.currentLevel === 0", timeout=30_000)
        page.wait_for_function("document.getElementById('now').textContent.includes('416x234')",
                               timeout=30_000)  # fmt: skip
        switches = page.evaluate("window.reelforgeSwitches")
        assert switches[-1] == 0 and len(levels) - 1 in switches
        page.close()
    finally:
        server.stop()
