"""The real dashboard server (`streamlit run`) rendered in headless Chromium, with screenshots.

Needs Debian's `chromium` at /usr/bin/chromium (or $ARENA_CHROMIUM): `apt-get install -y chromium`. The
screenshots are kept in each test's temp folder (`pytest --basetemp DIR` to find them) for a look.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fixtures_runs import flipped_copy, right_answers

from apps import dashboard_data as data
from leaderboard.store import Store

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("ARENA_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
NO_CHROMIUM = f"needs Chromium, none at {CHROMIUM}: apt-get install -y chromium (or set ARENA_CHROMIUM)"
STARTUP_S = 90  # server start on a busy 2-core runner

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=NO_CHROMIUM),
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


@contextmanager
def serve(db: Path, tmp_path: Path) -> Iterator[str]:
    """`arena-dashboard ... -- --db PATH` (`streamlit run apps/dashboard.py` with the page's own options) on a free
    port; $ARENA_DB names another (empty) store, so the page shows the runs only if `--db` wins as documented."""
    port = free_port()
    log = tmp_path / "streamlit.log"
    command = [str(Path(sys.executable).with_name("arena-dashboard")),
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


@pytest.fixture
def dashboard_url(tiny_run: Path, tmp_path: Path) -> Iterator[str]:
    db = tmp_path / "arena.db"
    Store(db).record_run(tiny_run)
    with serve(db, tmp_path) as url:
        yield url


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def settle(page, selector: str) -> None:
    page.wait_for_selector(selector, timeout=STARTUP_S * 1000)
    page.wait_for_timeout(1500)  # grids paint their canvas, plots their SVG, after they appear
    assert page.locator('[data-testid="stException"]').count() == 0


def test_dashboard_renders_in_headless_chromium(dashboard_url: str, browser, tmp_path: Path):
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(dashboard_url)
    settle(page, '[data-testid="stDataFrame"]')
    assert page.locator('[data-testid="stMetricValue"]').first.inner_text() == "1"  # runs
    leaderboard = tmp_path / "dashboard.png"
    page.screenshot(path=leaderboard, full_page=True)

    page.get_by_text("Accuracy vs cost", exact=True).click()
    settle(page, ".js-plotly-plot")
    assert page.locator(".js-plotly-plot").count() == 4
    tradeoffs = tmp_path / "tradeoffs.png"
    page.screenshot(path=tradeoffs, full_page=True)
    for shot in (leaderboard, tradeoffs):
        assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000


def test_reference_runs_leaderboard_and_200_class_details(browser, tmp_path: Path):
    """The shipped reference runs at a laptop's width: the grid (a canvas, left to the screenshot), labelled Pareto
    points, and the Tiny ImageNet run's most-confused table above its matrix."""
    db = tmp_path / "reference.db"
    assert not Store(db).ingest([REPO / "reference"]).skipped
    with serve(db, tmp_path) as url:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(url)
        settle(page, '[data-testid="stDataFrame"]')
        page.screenshot(path=tmp_path / "reference_leaderboard.png", full_page=True)
        assert page.get_by_text("Deploy", exact=True).count() == 0  # a page for reading results, no developer menu

        page.get_by_text("Accuracy vs cost", exact=True).click()
        settle(page, ".js-plotly-plot")
        assert page.locator(".js-plotly-plot .textpoint").count() > 0  # labelled points
        page.screenshot(path=tmp_path / "reference_tradeoffs.png", full_page=True)

        page.get_by_text("Run details", exact=True).click()
        settle(page, ".js-plotly-plot")
        page.get_by_test_id("stSelectbox").first.click()
        page.get_by_role("option").filter(has_text="tiny-imagenet").first.click()
        settle(page, "text=Most confused pairs")
        page.screenshot(path=tmp_path / "reference_tiny_imagenet_details.png", full_page=True)


def test_compare_view_verdict_in_headless_chromium(browser, tmp_path: Path):
    """The compare view of two paired real runs (the CIFAR-10 reference run and a copy with every 23rd answer
    flipped, on the same 5,000 images): intervals, verdict and the 2×2 table; a cell opens the gallery."""
    reference = REPO / "reference" / "cifar10-efficientnet_lite0"
    db = tmp_path / "arena.db"
    flipped = flipped_copy(reference, tmp_path / "runs" / "cifar10-flipped", 23)
    Store(db).ingest([reference, flipped])
    right_a, right_b = right_answers(reference), right_answers(flipped)
    with serve(db, tmp_path) as url:
        page = browser.new_page(viewport={"width": 1600, "height": 1200})
        page.goto(url)
        settle(page, '[data-testid="stDataFrame"]')
        page.get_by_text("Compare two runs", exact=True).click()
        settle(page, "text=Verdict: cifar10-efficientnet_lite0 is better")
        cells = [page.get_by_role("button", name=name) for name in
                 ("both right", "only A right", "only B right", "both wrong")]  # fmt: skip
        assert all(cell.count() == 1 and cell.is_enabled() for cell in cells)
        assert page.get_by_text("McNemar p").count() == 1
        compare = tmp_path / "compare.png"
        page.screenshot(path=compare, full_page=True)

        cells[1].click()  # only A right -> the error gallery of those samples
        settle(page, f"text=only A right: {(right_a & ~right_b.loc[right_a.index]).sum():,} samples")
    assert compare.read_bytes().startswith(b"\x89PNG") and compare.stat().st_size > 20_000


def test_gallery_shows_a_shipped_runs_images_once_the_data_directory_is_set(shared_data, browser, tmp_path: Path):
    """The shipped chest X-ray run's images are the user's copy of the dataset: the gallery shows none until its
    data directory is set, then every mistake's picture (decoded by the browser), and the setting is kept."""
    from playwright.sync_api import expect

    chest_xray = shared_data("chest_xray-train.tar.gz") / "chest_xray"
    db = tmp_path / "arena.db"
    Store(db).record_run(REPO / "reference" / "chest-xray-efficientnet_lite0")
    with serve(db, tmp_path) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        settle(page, '[data-testid="stDataFrame"]')
        page.get_by_text("Error gallery", exact=True).click()
        setting = page.get_by_role("textbox", name="Data directory of chest-xray")
        expect(setting).to_have_value("", timeout=STARTUP_S * 1000)  # the shipped placeholder is no folder here
        expect(setting).to_have_attribute("placeholder", "your copy of chest_xray")
        expect(page.get_by_text("images not found under")).to_be_visible()
        assert page.locator('[data-testid="stImage"] img').count() == 0
        page.screenshot(path=tmp_path / "gallery_before.png")

        setting.fill(str(chest_xray))
        setting.press("Enter")
        images = page.locator('[data-testid="stImage"] img')
        expect(images).to_have_count(12, timeout=STARTUP_S * 1000)  # the 12 most confident of 15 mistakes
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-testid=stImage] img')].every(i => i.naturalWidth > 0)",
            timeout=STARTUP_S * 1000,
        )
        assert page.get_by_text("images not found under").count() == 0
        assert page.locator('[data-testid="stException"]').count() == 0
        images.nth(4).scroll_into_view_if_needed()  # Streamlit scrolls its main block, not the page
        page.wait_for_timeout(1000)
        page.screenshot(path=tmp_path / "gallery.png")
    assert data.saved_data_dirs(db) == {"chest-xray": str(chest_xray)}
