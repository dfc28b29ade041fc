"""The page in a real browser: headless Debian Chromium driven by Playwright uploads an example, predicts, and
sees every model's labels and a Grad-CAM; the screenshot lands in the test's tmp dir.

Playwright's own browser download fails offline, so the test drives the distribution's binary
(`apt-get install -y chromium`) and skips when it is absent.
"""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

import pytest

from apps.gradio_app import build_app
from apps.sources import discover
from trainers.inference import Predictor

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
EXAMPLE = Path(__file__).resolve().parents[1] / "apps" / "examples" / "cifar10" / "cat_4000.jpg"
LAST_SCREENSHOT = Path("/tmp/gradio_screenshot.png")  # a fixed place to look at after a run
TIMEOUT_MS = 120_000  # a shared 2-core CPU is slow to load a model the first time

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not found: install Debian's chromium package"),
]


@pytest.fixture(scope="module")
def app_url(tiny_run):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build_app(discover([tiny_run.parent], None, []))
    demo.queue(default_concurrency_limit=2)
    _, url, _ = demo.launch(server_port=port, prevent_thread_lock=True, quiet=True)
    yield url
    demo.close()


def test_upload_predict_and_see_labels(app_url, tiny_run, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    top = Predictor.from_run(tiny_run).predict([EXAMPLE]).topk(0, 1)[0][0]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(app_url, timeout=TIMEOUT_MS)
            page.locator("#image input[type=file]").set_input_files(EXAMPLE)
            expect(page.locator("#image img")).to_be_visible(timeout=TIMEOUT_MS)
            page.get_by_role("button", name="Predict", exact=True).click()

            label = page.get_by_text(re.compile(r"cifar10-tiny · [\d.]+ ms"))
            expect(label).to_be_visible(timeout=TIMEOUT_MS)
            expect(page.locator("#summary")).to_contain_text("cifar10-tiny", timeout=TIMEOUT_MS)
            expect(page.locator("#summary")).to_contain_text(f"{top} (")  # the model's own top-1 with its probability
            expect(page.get_by_text(top, exact=True).first).to_be_visible()

            page.get_by_role("button", name="Show Grad-CAM").click()
            expect(page.locator("#gradcam img")).to_be_visible(timeout=TIMEOUT_MS)

            shot = tmp_path / "gradio_app.png"
            page.screenshot(path=shot, full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    shutil.copy(shot, LAST_SCREENSHOT)
