"""The status page in a real browser: Debian's chromium, headless, driven by playwright's Python package with
`executable_path=/usr/bin/chromium` (playwright never downloads a browser here; scripts/test installs chromium
from Debian when it is missing). The page is served by the daemon's StatusServer over a database the real
pipeline filled. A screenshot is taken; with MONITOR_UPDATE_SCREENSHOT=1 it replaces docs/status-page.png."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support.statussite import StatusSite, fill_database

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "status-page.png"
LAUNCH_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

playwright_sync = pytest.importorskip("playwright.sync_api")


@pytest.mark.slow
@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (scripts/test installs it)"
)
def test_the_page_in_chromium_shows_the_feed_table_and_an_alert(tmp_path: Path) -> None:
    database = tmp_path / "m.db"
    urls = fill_database(database)
    profile = tmp_path / "profile"  # a fresh user-data-dir: nothing of an earlier run is reused
    shot = tmp_path / "status-page.png"
    with StatusSite(database) as site, playwright_sync.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=LAUNCH_FLAGS,
            java_script_enabled=False,  # the page must work without it
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = context.new_page()
            response = page.goto(site.base_url + "/", wait_until="load")
            assert response is not None and response.status == 200
            table = page.locator("#feeds table")
            assert table.is_visible()
            rows = page.locator("#feeds tr.feed")
            assert rows.count() == len(urls)
            failing = page.locator('#feeds tr.feed[data-state="failing"]')
            assert failing.count() == 1 and "HTTP 404 Not Found" in failing.inner_text()
            first_alert = page.locator("#alerts li.alert").first
            assert first_alert.is_visible()
            assert first_alert.locator("mark").count() >= 1 and first_alert.locator("mark").first.is_visible()
            # the hostile title is shown as text, not run or rendered as markup
            assert page.get_by_text('<script>alert("x")</script>', exact=False).count() >= 1
            assert page.locator("#alerts b").count() == 0
            assert page.locator("#stories tr.story").count() >= 1
            page.screenshot(path=str(shot), full_page=False)
        finally:
            context.close()
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("MONITOR_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, SCREENSHOT)
