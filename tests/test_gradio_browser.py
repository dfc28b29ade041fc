"""The page in a real browser: headless Debian Chromium driven by Playwright, as a visitor uses it.

A visitor uploads an example, predicts, and sees every model's labels and a Grad-CAM; a new image, a task switch
or a refused upload leaves no earlier result on screen; Tiny ImageNet classes read as names, not WordNet ids.
Each test saves a screenshot of the screen it checks into its tmp dir (look at them: they are the evidence).

Playwright's own browser download fails offline, so the tests drive the distribution's binary
(`apt-get install -y chromium`) and skip when it is absent.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from PIL import Image

from apps.gradio_app import DISPLAY_SIDE, build_app, launch
from apps.sources import discover
from trainers.inference import Predictor

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
EXAMPLES = REPO / "apps" / "examples"
CAT = EXAMPLES / "cifar10" / "cat_4000.jpg"
SHIP = EXAMPLES / "cifar10" / "ship_4000.jpg"
GOLDFISH = EXAMPLES / "tiny-imagenet" / "goldfish_n01443537_0.JPEG"
# A Tiny ImageNet run folder from before human label names has WordNet ids as label_names and words.txt's glosses
# in label_descriptions (the shipped run was one such); the page shows names either way.
TINY_IMAGENET_RUN = REPO / "reference" / "tiny-imagenet-efficientnet_lite0"
FER_RUN = REPO / "reference" / "fer2013-efficientnet_lite0"
FER_FACE = EXAMPLES / "fer2013" / "happy_PublicTest_58895662.jpg"  # 48x48, a face crop already
WNID = re.compile(r"\bn\d{8}\b")
TIMEOUT_MS = 120_000  # a shared 2-core CPU is slow to load a model the first time

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not found: install Debian's chromium package"),
]


@pytest.fixture(scope="module")
def app_url(tiny_run):
    """The app with three tasks: the trained CIFAR-10 test run, and the shipped Tiny ImageNet and FER2013 runs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build_app(discover([tiny_run.parent, TINY_IMAGENET_RUN, FER_RUN], None, []))
    demo.queue(default_concurrency_limit=2)
    _, url, _ = launch(demo, server_port=port, prevent_thread_lock=True, quiet=True)
    yield url
    demo.close()


@pytest.fixture
def page(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(app_url)
            yield page
        finally:
            browser.close()


def give(page, image: Path) -> None:
    """Upload `image` into the input box (replacing what is there) and wait for the page to accept it."""
    from playwright.sync_api import expect

    page.locator("#image input[type=file]").set_input_files(image)
    expect(page.locator("#image")).to_contain_text(f"Image · {'×'.join(map(str, Image.open(image).size))} px")


def predict(page) -> None:
    from playwright.sync_api import expect

    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.locator("#summary")).to_be_visible()
    expect(page.locator("#gradcam img")).to_be_visible()


def choose_task(page, dataset: str) -> None:
    page.locator("#dataset input").click()
    page.get_by_role("option", name=dataset, exact=True).click()


def assert_no_results(page) -> None:
    from playwright.sync_api import expect

    expect(page.locator("#summary")).to_be_hidden()
    expect(page.locator("#gradcam img")).to_have_count(0)
    expect(page.locator("#cam-caption")).to_have_text("")
    expect(page.get_by_text(re.compile(r"· [\d.]+ ms$"))).to_have_count(0)  # no model's label panel


def shoot(page, path: Path) -> Path:
    page.wait_for_timeout(1000)  # let gradio's pending-output fade finish: the picture is for people to look at
    page.screenshot(path=path, full_page=True)
    assert path.stat().st_size > 10_000
    return path


def test_upload_predict_and_see_labels_and_gradcam(page, tiny_run, tmp_path):
    from playwright.sync_api import expect

    top = Predictor.from_run(tiny_run).predict([CAT]).topk(0, 1)[0][0]
    give(page, CAT)
    expect(page.locator("#image")).to_contain_text("Image · 32×32 px, shown enlarged")
    predict(page)
    expect(page.get_by_text(re.compile(r"cifar10-tiny · [\d.]+ ms"))).to_be_visible()
    expect(page.locator("#summary")).to_contain_text("cifar10-tiny")
    expect(page.locator("#summary")).to_contain_text(f"{top} (")  # the model's own top-1 with its probability
    expect(page.get_by_text(top, exact=True).first).to_be_visible()
    expect(page.locator("#cam-caption")).to_contain_text("Where cifar10-tiny looked for ")
    shoot(page, tmp_path / "predicted.png")
    cam = page.locator("#gradcam img")
    assert cam.evaluate("img => img.naturalWidth") >= DISPLAY_SIDE * 0.8, "the heatmap is sent enlarged"
    assert cam.bounding_box()["width"] >= 250, "and shown at a useful size"
    # The enlarged 32 px input fills its box, as the heatmap beside it does.
    assert page.locator("#image img").bounding_box()["width"] >= 250


def test_a_new_image_or_task_leaves_no_stale_gradcam(page, tmp_path):
    give(page, CAT)
    predict(page)
    give(page, SHIP)
    assert_no_results(page)
    shoot(page, tmp_path / "after-new-image.png")

    predict(page)
    choose_task(page, "tiny-imagenet")
    assert_no_results(page)
    shoot(page, tmp_path / "after-task-switch.png")


def test_a_refused_upload_clears_the_results_and_says_why_once(page, tmp_path):
    from playwright.sync_api import expect

    give(page, CAT)
    predict(page)
    renamed = tmp_path / "notes.jpg"
    renamed.write_text("a text file renamed .jpg")
    page.locator("#image input[type=file]").set_input_files(renamed)
    expect(page.locator("#status")).to_contain_text("Image refused: notes.jpg: not a readable image")
    assert_no_results(page)
    expect(page.locator("#image img")).to_have_count(0)  # the refused file is not kept as a broken preview
    expect(page.get_by_text("Error", exact=True)).to_have_count(0)  # no error badges on stale outputs
    shoot(page, tmp_path / "refused-upload.png")

    page.get_by_role("button", name="Predict", exact=True).click()  # and Predict on an empty box: one message
    expect(page.locator("#status")).to_contain_text("Not predicted: no image given")
    assert_no_results(page)
    shoot(page, tmp_path / "predict-without-image.png")


def test_tiny_imagenet_labels_are_names_not_wordnet_ids(page, tmp_path):
    from playwright.sync_api import expect

    choose_task(page, "tiny-imagenet")
    give(page, GOLDFISH)
    predict(page)
    labels = page.get_by_text(re.compile(r"tiny-imagenet-efficientnet_lite0 · [\d.]+ ms")).locator("..")
    expect(page.locator("#summary")).to_contain_text("goldfish (")
    expect(page.get_by_text("goldfish", exact=True).first).to_be_visible()
    expect(page.locator("#cam-caption")).to_contain_text("Where tiny-imagenet-efficientnet_lite0 looked for goldfish")
    assert labels.count() >= 1
    page_text = page.locator("body").inner_text()
    assert not WNID.search(page_text.replace(GOLDFISH.name, "")), "a WordNet id is shown where a name belongs"
    shoot(page, tmp_path / "tiny-imagenet-names.png")


def test_a_48px_face_and_its_crop_are_shown_enlarged_with_their_true_size(page, tmp_path):
    from playwright.sync_api import expect

    choose_task(page, "fer2013")
    give(page, FER_FACE)
    expect(page.locator("#image")).to_contain_text("Image · 48×48 px, shown enlarged")
    predict(page)
    scale = DISPLAY_SIDE // 48
    expect(page.locator("#face")).to_contain_text(f"Face the models saw · 48×48 px, shown ×{scale}")
    shoot(page, tmp_path / "fer-face-crop.png")
    face = page.locator("#face img")
    assert face.evaluate("img => img.naturalWidth") == 48 * scale
    assert face.bounding_box()["width"] >= 250, "the crop is shown at a useful size"
    assert page.locator("#image img").bounding_box()["width"] >= 250, "and so is the input"


def test_on_a_phone_the_summary_table_scrolls_and_panel_titles_sit_above_their_class(page):
    """At 390 px the table is wider than its column: it scrolls inside it rather than losing its speed and prediction
    columns; a panel's title takes its own line above the predicted class instead of floating over it."""
    page.set_viewport_size({"width": 390, "height": 844})
    give(page, CAT)
    predict(page)
    summary = page.locator("#summary").evaluate(
        "e => [e.scrollWidth, e.clientWidth, getComputedStyle(e).overflowX]")
    assert summary[0] > summary[1] and summary[2] in ("auto", "scroll"), summary
    panel = page.locator(".prediction").first
    title, heading = panel.get_by_test_id("block-label").bounding_box(), panel.locator("h2").first.bounding_box()
    assert title["y"] + title["height"] <= heading["y"], (title, heading)
