"""The real dashboard server (`streamlit run`) rendered in headless Chromium, with screenshots.

Needs Debian's `chromium` at /usr/bin/chromium (or $ARENA_CHROMIUM): `apt-get install -y chromium`. The
screenshots are kept in the test's temp folder and copied to /tmp/dashboard_screenshot.png (leaderboard) and
/tmp/dashboard_tradeoffs.png for a look.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from leaderboard.store import Store

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("ARENA_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
STARTUP_S = 90  # server start on a busy 2-core runner

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"no Chromium at {CHROMIUM}: apt-get install -y chromium"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"streamlit exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read() == b"ok":
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"streamlit did not answer within {STARTUP_S} s:\n{log.read_text()}")


@pytest.fixture
def dashboard_url(tiny_run: Path, tmp_path: Path) -> Iterator[str]:
    """`streamlit run apps/dashboard.py -- --db PATH` on a free port; $ARENA_DB names another (empty) store, so the
    page shows the run only if `--db` wins as documented."""
    db = tmp_path / "arena.db"
    Store(db).record_run(tiny_run)
    port = free_port()
    log = tmp_path / "streamlit.log"
    command = [sys.executable, "-m", "streamlit", "run", str(REPO / "apps" / "dashboard.py"),
               "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
               "--browser.gatherUsageStats", "false", "--", "--db", str(db)]  # fmt: skip
    env = os.environ | {"ARENA_DB": str(tmp_path / "not-this.db")}
    with log.open("w") as out:
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, server, log)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_dashboard_renders_in_headless_chromium(dashboard_url: str, tmp_path: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(dashboard_url)
            page.wait_for_selector('[data-testid="stDataFrame"]', timeout=STARTUP_S * 1000)
            page.wait_for_timeout(1500)  # the grid paints its canvas after it appears
            assert page.locator('[data-testid="stMetricValue"]').first.inner_text() == "1"  # runs
            assert page.locator('[data-testid="stException"]').count() == 0
            leaderboard = tmp_path / "dashboard.png"
            page.screenshot(path=leaderboard, full_page=True)

            page.get_by_text("Accuracy vs cost", exact=True).click()
            page.wait_for_selector(".js-plotly-plot", timeout=STARTUP_S * 1000)
            page.wait_for_timeout(1500)
            assert page.locator(".js-plotly-plot").count() == 4
            assert page.locator('[data-testid="stException"]').count() == 0
            tradeoffs = tmp_path / "tradeoffs.png"
            page.screenshot(path=tradeoffs, full_page=True)
        finally:
            browser.close()
    for shot in (leaderboard, tradeoffs):
        assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000
    shutil.copy(leaderboard, "/tmp/dashboard_screenshot.png")
    shutil.copy(tradeoffs, "/tmp/dashboard_tradeoffs.png")
