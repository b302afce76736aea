"""Chromium for portal tests: Playwright driving Debian's ``/usr/bin/chromium``
headless (never ``playwright install``; no browser downloads). A fresh
browser context per test; screenshots go to ``test-output/`` (gitignored)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.peers import missing_peer

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"


@pytest.fixture
async def browser_page():
    """A phone-sized page (390×844, touch) in a fresh headless Chromium."""
    import playwright.async_api as playwright_api

    if not os.path.exists(CHROMIUM):
        missing_peer("Chromium (Debian package chromium) is not installed")
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        context = await browser.new_context(viewport={"width": 390, "height": 844},
                                            is_mobile=True, has_touch=True,
                                            accept_downloads=True)
        page = await context.new_page()
        page.set_default_timeout(20_000)
        try:
            yield page
        finally:
            await context.close()
            await browser.close()


@pytest.fixture
def screenshot_dir() -> Path:
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT
