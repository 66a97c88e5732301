"""The player page in a real headless Chromium (Debian's package, driven by Playwright)."""

from __future__ import annotations

import pytest
from browsers import chromium
from conftest import ROOT, Server

FIRST_FRAME = """() => new Promise(resolve => document.getElementById('video')
    .requestVideoFrameCallback((now, meta) => resolve(meta.presentedFrames)))"""


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def open_page(browser, url: str):
    """A new page at ``url`` and the list of every URL it requests."""
    page = browser.new_page()
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url))
    page.goto(url)
    return page, fetched


def plays(page) -> None:
    """The first frame is presented (requestVideoFrameCallback) and time moves on."""
    page.wait_for_function("document.getElementById('video').currentTime > 0.3",
                           timeout=30_000)  # fmt: skip
    assert page.evaluate(FIRST_FRAME) >= 1
    # the native controls, held back during start-up, are there once a frame is up
    page.wait_for_function("document.getElementById('video').controls", timeout=5_000)
    t1 = page.evaluate("document.getElementById('video').currentTime")
    page.wait_for_timeout(1500)
    t2 = page.evaluate("document.getElementById('video').currentTime")
    assert t2 > t1 + 0.5, (t1, t2)


def test_player_starts_from_the_page_plays_and_switches(browser, talk):
    out, report = talk
    server = Server(out)
    try:
        page, fetched = open_page(browser, server.base + "/")
        plays(page)
        # the start-up files came inlined in the page: no request for the master, the first
        # rung's or the audio's playlists, their init segments or their first segments
        low = next(r for r in report["renditions"] if r["kind"] == "video")
        audio = next(r for r in report["renditions"] if r["kind"] == "audio")
        for track in (low, audio):
            folder = out / track["playlist"].rsplit("/", 1)[0]
            first = sorted(folder.glob("seg-00000-*.m4s"))[0].name
            init = next(folder.glob("init-*.mp4")).name
            for name in ("playlist.m3u8", init, first):
                assert not [u for u in fetched if u.endswith(f"/{track['name']}/{name}")], name
        assert not [u for u in fetched if u.endswith("/master.m3u8")], fetched
        assert [u for u in fetched if u.endswith(".m4s")], "later segments come from the network"
        # the poster preview is inlined: no image request either
        assert not [u for u in fetched if "/poster" in u], fetched
        # forcing a rung: the player switches and says so on the page
        levels = page.evaluate("window.reelforgeHls.levels.map(l => l.height)")
        assert levels == sorted(levels) and len(levels) == 4
        page.select_option("#levels", str(len(levels) - 1))
        page.wait_for_function(f"window.reelforgeHls.currentLevel === {len(levels) - 1}",
                               timeout=30_000)  # fmt: skip
        page.wait_for_function("document.getElementById('now').textContent.includes('1280x720')",
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


def test_dash_player_plays_and_switches(browser, talk):
    if not (ROOT / "node_modules" / "dashjs").is_dir():
        pytest.skip("dash.js is not installed (npm ci)")
    out, _ = talk
    server = Server(out)
    try:
        page, fetched = open_page(browser, server.base + "/?format=dash")
        plays(page)
        assert [u for u in fetched if u.endswith("/manifest.mpd")]
        assert not [u for u in fetched if u.endswith(".m3u8")], "DASH mode reads the MPD only"
        heights = page.evaluate(
            "window.reelforgeDash.getRepresentationsByType('video').map(r => r.height)"
        )
        assert sorted(heights) == [234, 360, 540, 720]
        top = heights.index(720)
        page.select_option("#levels", str(top))
        page.wait_for_function("document.getElementById('now').textContent.includes('1280x720')",
                               timeout=30_000)  # fmt: skip
        assert page.evaluate("document.getElementById('video').videoHeight") == 720
        page.close()
    finally:
        server.stop()
