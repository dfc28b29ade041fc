"""The Gradio app end to end: `python apps/gradio_app.py` on a free port, real run folders, gradio_client as caller.

Predictions through the API must equal `Predictor` run directly; hostile uploads must be refused cleanly while the
server keeps serving; odd but valid images (16-bit, CMYK, alpha, palette, animation, EXIF rotation) must predict
exactly as the decoded upright image does.
"""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import gradio as gr
import httpx
import numpy as np
import pytest
import timm
from fixtures_runs import make_run
from gradio_client import Client, handle_file
from PIL import Image

from apps import gradio_app as app
from apps.faces import crop_face
from apps.gradcam import gradcam, target_layer
from apps.sources import Catalog, discover
from leaderboard.store import Store
from runfolder import find_runs
from trainers.inference import Predictor

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "apps" / "examples" / "cifar10" / "cat_4000.jpg"
PORTRAIT = REPO / "apps" / "examples" / "fer2013" / "grace_hopper.jpg"
UNCACHED_HUB_ID = "arena-test/not-in-cache"

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sources(tiny_run, tmp_path_factory) -> dict[str, Path]:
    """A real Lite0 run (trained), a ResNet run per dataset, and one run known only to the leaderboard store."""
    runs = tmp_path_factory.mktemp("app-runs")
    elsewhere = tmp_path_factory.mktemp("stored-runs")
    found = {
        tiny_run.name: tiny_run,
        "cifar10-resnet": make_run(runs, "cifar10-resnet", dataset="cifar10"),
        "fer-resnet": make_run(runs, "fer-resnet", dataset="fer2013"),
        "chest-stored": make_run(elsewhere, "chest-stored", dataset="chest-xray"),
    }
    db = elsewhere / "leaderboard.db"
    Store(db).record_run(found["chest-stored"])
    return {"runs": runs, "tiny_root": tiny_run.parent, "db": db, **found}


@pytest.fixture(scope="module")
def server(sources, tmp_path_factory):
    """The app as a visitor's Space runs it: its own process, cwd without runs/, offline, one unreachable Hub id."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ARENA_HUB_MODELS": UNCACHED_HUB_ID}
    env.pop("ARENA_DB", None)
    env.pop(app.ANALYTICS_ENV, None)  # the default a deployer gets
    log = tmp_path_factory.mktemp("server") / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "apps" / "gradio_app.py"), "--host", "127.0.0.1", "--port", str(port),
             "--runs", str(sources["runs"]), "--runs", str(sources["tiny_root"]), "--db", str(sources["db"])],
            cwd=log.parent, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 240
    while "Running on local URL" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"app did not start:\n{log.read_text()}")
        time.sleep(0.5)
    yield {"url": url, "proc": proc, "log": log}
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def client(server) -> Client:
    return Client(server["url"], verbose=False)


def upload(path: Path) -> dict:
    """What a gradio upload event hands the app's functions (they run with preprocess=False)."""
    return {"path": str(path), "orig_name": path.name}


def direct(run: Path, image: Path | Image.Image) -> dict[str, float]:
    prediction = Predictor.from_run(run).predict([image])
    return dict(zip(prediction.labels, prediction.probs[0].tolist(), strict=True))


def assert_same(got: dict[str, float], expected: dict[str, float]) -> None:
    assert list(got) == list(expected)
    np.testing.assert_allclose(list(got.values()), list(expected.values()), atol=1e-5)


# ---- the API against the model run directly


def test_predict_matches_predictor_for_each_model(client, sources):
    names = ["cifar10-tiny", "cifar10-resnet", "chest-stored"]
    result = client.predict(handle_file(EXAMPLE), names, api_name="/predict")
    assert list(result) == names
    for name in names:
        assert_same(result[name], direct(sources[name], EXAMPLE))


def test_predict_without_model_list_uses_every_model(client, server):
    """Every model: the --runs folders' and the store's, and the shipped reference runs, found from any folder."""
    result = client.predict(handle_file(EXAMPLE), [], api_name="/predict")
    shipped = {run.name for run in find_runs(REPO / "reference")}
    assert len(shipped) >= 15
    assert set(result) == {"cifar10-tiny", "cifar10-resnet", "fer-resnet", "chest-stored"} | shipped
    for probs in result.values():
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-4)
    assert f"Hub model {UNCACHED_HUB_ID} unavailable" in server["log"].read_text()


def test_predict_batch_keeps_order_and_reports_bad_images(client, sources, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    second = REPO / "apps" / "examples" / "cifar10" / "ship_4000.jpg"
    result = client.predict([handle_file(EXAMPLE), handle_file(bad), handle_file(second)], ["cifar10-tiny"],
                            api_name="/predict_batch")
    assert [r["image"] for r in result] == ["cat_4000.jpg", "notes.txt", "ship_4000.jpg"]
    assert "not a readable image" in result[1]["error"] and "predictions" not in result[1]
    for entry, path in ((result[0], EXAMPLE), (result[2], second)):
        assert_same(entry["predictions"]["cifar10-tiny"], direct(sources["cifar10-tiny"], path))


def test_unknown_model_is_refused(client):
    with pytest.raises(Exception, match="unknown model 'hf-hub:someone/anything'"):
        client.predict(handle_file(EXAMPLE), ["hf-hub:someone/anything"], api_name="/predict")


# ---- hostile and odd inputs


def _png(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **kwargs)
    return buffer.getvalue()


def hostile_files(folder: Path) -> dict[str, Path]:
    jpeg = EXAMPLE.read_bytes()
    contents = {
        "not-an-image.jpg": b"%PDF-1.4 this is not a picture",
        "empty.png": b"",
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "one-pixel.png": _png(Image.new("RGB", (1, 1), "red")),
        "100-megapixels.png": _png(Image.new("1", (10_000, 10_000))),
    }
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in contents}


REFUSALS = {
    "not-an-image.jpg": "not a readable image",
    "empty.png": "empty file (0 bytes)",
    "truncated.jpg": "not a readable image",
    "one-pixel.png": "1x1 px",
    "100-megapixels.png": "image too large",
}


def test_hostile_inputs_get_clean_errors_and_the_server_keeps_serving(client, server, tmp_path):
    for name, path in hostile_files(tmp_path).items():
        with pytest.raises(Exception, match=re.escape(REFUSALS[name])) as caught:
            client.predict(handle_file(path), ["cifar10-tiny"], api_name="/predict")
        assert "/tmp/gradio" not in str(caught.value), "the message must name the upload, not the server's path"
    assert server["proc"].poll() is None
    assert "cifar10-tiny" in client.predict(handle_file(EXAMPLE), ["cifar10-tiny"], api_name="/predict")


def test_analytics_are_off_and_a_handled_error_is_one_log_line(client, server, tmp_path):
    assert httpx.get(f"{server['url']}config", timeout=30).json()["analytics_enabled"] is False
    renamed = tmp_path / "notes.jpg"
    renamed.write_text("a text file renamed .jpg")
    with pytest.raises(Exception, match="notes.jpg: not a readable image"):
        client.predict(handle_file(renamed), ["cifar10-tiny"], api_name="/predict")
    log = server["log"].read_text()
    assert re.search(r"WARNING apps.gradio_app: refused: notes.jpg: not a readable image \(.*\)\n", log)
    assert "Traceback" not in log, "errors the app handles are logged on one line, without a traceback"


def odd_files(folder: Path) -> dict[str, tuple[Path, Image.Image]]:
    """Valid images in awkward encodings, each with the upright RGB picture it must be read as."""
    photo = Image.open(EXAMPLE).convert("RGB").resize((96, 96))
    gray16 = (np.linspace(0, 65535, 96 * 96).reshape(96, 96)).astype(np.uint16)
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((96, 96)))
    rotated = photo.transpose(Image.Transpose.ROTATE_90)  # stored sideways, EXIF says: rotate back
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    frames = [photo, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    files = {
        "gray16.png": (lambda p: Image.fromarray(gray16).save(p), None),
        "cmyk.jpg": (lambda p: photo.convert("CMYK").save(p, quality=95), None),
        "rgba.png": (lambda p: rgba.save(p), None),
        "palette.png": (lambda p: photo.quantize(64).save(p), None),
        "animated.gif": (lambda p: frames[0].save(p, save_all=True, append_images=frames[1:]), None),
        "exif-rotated.png": (lambda p: rotated.save(p, exif=exif), photo),
    }
    out = {}
    for name, (write, upright) in files.items():
        write(folder / name)
        out[name] = (folder / name, upright)
    return out


def test_odd_but_valid_images_predict_like_the_model_run_directly(client, sources, tmp_path):
    run = sources["cifar10-tiny"]
    for path, upright in odd_files(tmp_path).values():
        got = client.predict(handle_file(path), ["cifar10-tiny"], api_name="/predict")["cifar10-tiny"]
        assert_same(got, direct(run, path))
        if upright is not None:  # EXIF: the app must see the picture upright, exactly
            assert_same(got, direct(run, upright))


# ---- model sources and the empty app (in process)


def test_catalog_from_runs_store_and_offline_hub(sources, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    catalog = discover([sources["runs"], sources["tiny_root"], sources["runs"]], sources["db"], [UNCACHED_HUB_ID])
    names = [m.name for m in catalog.models]
    assert sorted(names) == ["chest-stored", "cifar10-resnet", "cifar10-tiny", "fer-resnet"], "each run once"
    assert catalog.datasets() == ["chest-xray", "cifar10", "fer2013"]
    tiny = catalog.get("cifar10-tiny")
    assert tiny.backbone.startswith("efficientnet_lite0") or tiny.backbone.startswith("tf_efficientnet_lite0")
    assert [m.top1 for m in catalog.for_dataset("cifar10")] == sorted(
        (m.top1 for m in catalog.for_dataset("cifar10")), reverse=True)
    assert any(UNCACHED_HUB_ID in note for note in catalog.notes)


def test_hub_ids_come_from_configuration_only(monkeypatch):
    from apps import sources as src

    monkeypatch.setenv(src.HUB_MODELS_ENV, " org/a, ,org/b ")
    assert src.configured_hub_ids() == ["org/a", "org/b"]


def test_without_models_the_app_starts_and_says_how_to_train_one(tmp_path):
    demo = app.build_app(Catalog([], []))
    demo.queue()
    _, url, _ = demo.launch(server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        config = httpx.get(f"{url}config", timeout=30).text
        assert "python trainers/finetune.py" in config
        with pytest.raises(Exception, match="No fine-tuned model found"):
            Client(url, verbose=False).predict(handle_file(EXAMPLE), [], api_name="/predict")
    finally:
        demo.close()


# ---- the page's own functions: side by side, face crop, Grad-CAM


@pytest.fixture(scope="module")
def pool(sources) -> app.ModelPool:
    return app.ModelPool(discover([sources["runs"], sources["tiny_root"]], None, []))


def test_compare_shows_each_model_with_latency(pool):
    results = app.compare(pool, upload(EXAMPLE), ["cifar10-tiny", "cifar10-resnet"], False)
    assert "<td>cifar10-tiny</td>" in results.summary and "forward ms" in results.summary
    assert [title.split(" · ")[0] for title, _ in results.labels] == ["cifar10-tiny", "cifar10-resnet"]
    assert all(re.search(r" · [\d.]+ ms$", title) for title, _ in results.labels)
    assert results.face is None
    assert results.cam is not None and results.cam_caption.startswith("Where **cifar10-tiny** looked for **")
    updates = results.updates()
    assert len(updates) == 5 + app.SLOTS and sum(u.visible is True for u in updates[5:]) == 2


def test_score_column_names_each_runs_split(tmp_path):
    runs = [make_run(tmp_path, "on-test", dataset="cifar10", eval_split="test"),
            make_run(tmp_path, "on-val", dataset="cifar10", eval_split="val")]
    pool = app.ModelPool(discover(runs, None, []))
    only_test = app.compare(pool, upload(EXAMPLE), ["on-test"], False).summary
    assert "top-1 (test split)" in only_test and "val" not in only_test
    mixed = app.compare(pool, upload(EXAMPLE), ["on-test", "on-val"], False).summary
    assert "top-1 (split)" in mixed and "% (test)</td>" in mixed and "% (val)</td>" in mixed


def test_face_crop_for_expression_models(pool):
    portrait = Image.open(PORTRAIT).convert("RGB")
    face = crop_face(portrait)
    assert face is not None and face.width * face.height < 0.4 * portrait.width * portrait.height
    small = Image.new("RGB", (48, 48))
    assert crop_face(small) is small, "FER2013's own 48x48 images are face crops already"
    shown = app.compare(pool, upload(PORTRAIT), ["fer-resnet"], True).face
    assert shown is not None and shown.size == face.size


def test_small_pictures_are_enlarged_pixel_exact_with_their_true_size():
    tiny = Image.fromarray(np.arange(48 * 48 * 3, dtype=np.uint8).reshape(48, 48, 3))
    shown = app.enlarged(tiny)
    scale = app.DISPLAY_SIDE // 48
    assert shown.size == (48 * scale, 48 * scale)
    np.testing.assert_array_equal(np.asarray(shown)[::scale, ::scale], np.asarray(tiny))  # nearest neighbour
    assert app.size_caption(tiny) == f"48×48 px, shown ×{scale}"
    assert app.size_caption(Image.new("RGB", (500, 400))) == "500×400 px"


def test_gradcam_overlay_for_chosen_and_top_class(pool):
    picture = Image.open(EXAMPLE).convert("RGB")
    top, top_caption = app.gradcam_view(pool, picture, "cifar10-tiny", app.TOP_CLASS)
    ship, ship_caption = app.gradcam_view(pool, picture, "cifar10-tiny", "ship")
    assert top_caption.startswith("Where **cifar10-tiny** looked for **") and "looked for **ship**" in ship_caption
    with pool.use("cifar10-tiny") as predictor:
        direct_cam = gradcam(predictor, EXAMPLE, predictor.labels.index("ship"))
    assert direct_cam.dtype == np.uint8 and direct_cam.shape[2] == 3
    assert direct_cam.shape[:2] == tuple(predictor.preprocess(EXAMPLE).shape[1:])
    scale = ship.width // direct_cam.shape[1]
    np.testing.assert_array_equal(np.asarray(ship)[::scale, ::scale], direct_cam)  # enlarged, pixel for pixel


@pytest.mark.parametrize(("arch", "layer"), [
    ("vgg16", "features.30"), ("resnet50", "layer4"), ("inception_v3", "Mixed_7c"),
    ("efficientnet_lite0", "blocks.6"), ("vit_tiny_patch16_224", "blocks.11"),
])
def test_gradcam_finds_the_target_layer_per_family(arch, layer):
    model = timm.create_model(arch, pretrained=False, num_classes=3).eval()
    found, _ = target_layer(model)
    assert found is model.get_submodule(layer)
    cam = gradcam(Predictor(model), Image.open(EXAMPLE), 1)
    size = model.pretrained_cfg["input_size"][1:]
    assert cam.shape == (*size, 3) and cam.std() > 0


def test_an_error_replaces_every_result_with_one_message(pool, tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(gr.Error, match="empty file"):
        app.compare(pool, upload(empty), ["cifar10-tiny"], False)
    status, summary, face, cam, caption, *slots = app.on_predict(pool, upload(empty), ["cifar10-tiny"], False,
                                                                 None, None)
    assert status.visible and "empty.jpg: empty file" in status.value and "error" in status.elem_classes
    assert summary.visible is False and face.visible is False and cam.value is None and not caption.value
    assert all(slot.visible is False for slot in slots)
    with pytest.raises(gr.Error, match="choose at least one model"):  # not every task's models on one picture
        app.compare(pool, upload(EXAMPLE), [], False)


def test_a_non_image_upload_is_refused_at_upload_time(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("a text file renamed .jpg")
    box, status, summary, *_ = app.on_image(upload(text))
    assert box.value is None, "the refused file leaves the upload box"
    assert "notes.jpg: not a readable image" in status.value and summary.visible is False
    box, status, *_ = app.on_image(upload(EXAMPLE))
    assert box.label == "Image · 32×32 px, shown enlarged" and app.SMALL_INPUT in box.elem_classes
    assert status.visible is False, "a good image removes the old message"


def test_a_network_trained_from_scratch_is_named_by_its_architecture():
    from apps.sources import entry_from_metrics

    scratch = entry_from_metrics("chest-xray-xray_cnn1", "x", {"model": "xray_cnn1", "pretrained_tag": "none",
                                                                "dataset": "chest-xray", "top1": 0.866})
    assert scratch.architecture == "xray_cnn1" and scratch.pretraining == "trained from scratch (no pretraining)"
    lite0 = entry_from_metrics("lp", "y", {"model": "tf_efficientnet_lite0",
                                           "pretrained_tag": "tf_efficientnet_lite0.in1k"})
    assert (lite0.architecture, lite0.pretraining) == ("tf_efficientnet_lite0",
                                                       "pretrained: tf_efficientnet_lite0.in1k")
