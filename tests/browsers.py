"""Debian's Chromium under Playwright, started one way for every browser test."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@contextlib.contextmanager
def chromium() -> Iterator:
    """A Chromium browser (autoplay allowed); skips the test when it or Playwright is
    missing (``.ci/run`` installs both)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (.ci/run installs the Debian package)")
    with sync_api.sync_playwright() as p:
        autoplay = "--autoplay-policy=no-user-gesture-required"
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[autoplay])
        try:
            yield browser
        finally:
            browser.close()
