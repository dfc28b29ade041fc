"""ONNX export (`python -m trainers.export`): validated against PyTorch on real images, dynamic batch really
dynamic, labels and preprocessing in the file, the ONNX backend agreeing with the other code paths, and
the seed and custom backbones exporting (or saying why not).

An export takes 15-70 s on a 2-core CPU, so the default run exports the trained EfficientNet-Lite0 run,
ResNet50 and the small custom network; ARENA_EXPORT_ALL=1 adds Inception-v3, VGG16, ResNet101 and ResNet152.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import timm
import torch
from conftest import SAMPLE, evaluated_images
from safetensors.torch import load_file, save_file
from timm.data import resolve_data_config

import runfolder as R
from trainers import export, predict
from trainers.export import ExportError, export_onnx, main
from trainers.inference import ONNX_FILE, OnnxModel, Predictor

REAL = sorted((SAMPLE / "val").rglob("*.jpg"))
FER_LABELS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory) -> tuple[Path, object]:
    """A copy of the tiny trained run (the shared fixture stays untouched), exported with the defaults:
    validated on the run's own evaluation images, which its train_config.yaml points to."""
    run = tmp_path_factory.mktemp("export") / tiny_run.name
    shutil.copytree(tiny_run, run)
    return run, main([str(run)])


def test_export_validates_float32_on_the_runs_images(exported, capsys):
    run, result = exported
    assert (run / ONNX_FILE).is_file()
    assert result.ok and result.top1_agreement == 1.0 and result.max_abs_diff <= 1e-4
    assert result.batch_sizes[0] == 1 and 7 in result.batch_sizes
    assert result.images == len(pd.read_parquet(run / R.PREDICTIONS))  # the run's evaluation images


def test_metadata_carries_labels_and_preprocessing(exported):
    run, _ = exported
    proto = onnx.load(run / ONNX_FILE)
    meta = {p.key: p.value for p in proto.metadata_props}
    config = R.read_config(run)
    cfg = config["pretrained_cfg"]
    assert json.loads(meta["labels"]) == config["label_names"]
    assert json.loads(meta["mean"]) == cfg["mean"] and json.loads(meta["std"]) == cfg["std"]
    assert json.loads(meta["input_size"]) == cfg["input_size"]
    assert meta["interpolation"] == cfg["interpolation"] and json.loads(meta["crop_pct"]) == cfg["crop_pct"]
    assert meta["architecture"] == config["architecture"] and meta["precision"] == "float32"
    assert "file" not in json.loads(meta["pretrained_cfg"])  # no local paths leak into a shipped file
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.dim_value


def test_dynamic_batch_runs_any_batch_size(exported):
    run, _ = exported
    predictor = Predictor.from_run(run)
    onnx_model = OnnxModel(run / ONNX_FILE)
    batch = torch.stack([predictor.preprocess(p) for p in REAL[:7]])
    with torch.inference_mode():
        expected = predictor.model(batch)
    for size in (1, 7, 3):
        logits = onnx_model(batch[:size])
        assert logits.shape == (size, 10)
        assert torch.allclose(logits, expected[:size], atol=1e-4)


def test_onnx_backend_agrees_with_evaluator_cli_and_app(exported, tmp_path):
    run, _ = exported
    evaluated = pd.read_parquet(run / R.PREDICTIONS)
    listed = tmp_path / "eval.txt"
    images = evaluated_images(run)
    listed.write_text("\n".join(images) + "\n")
    cli = predict.main([str(run), str(listed), "--backend", "onnx"])
    app = Predictor.from_run(run, backend="onnx")
    assert app.backend == "onnx" and app.model is None
    probs = app.predict(images).probs
    assert [r["label_1"] for r in cli] == evaluated["pred_label"].tolist()
    assert [app.labels[i] for i in probs.argmax(1)] == evaluated["pred_label"].tolist()
    assert np.allclose(probs.max(1), evaluated[R.CALIBRATED_CONFIDENCE], atol=1e-4)  # the run's temperature too


def test_onnx_of_other_weights_is_refused(exported, tmp_path):
    run, _ = exported
    retrained = tmp_path / "retrained"
    shutil.copytree(run, retrained)
    weights = load_file(retrained / R.WEIGHTS)
    weights["classifier.bias"] += 1.0
    save_file(weights, retrained / R.WEIGHTS)
    with pytest.raises(ValueError, match="re-export"):
        Predictor.from_run(retrained, backend="onnx")


def test_missing_onnx_and_unreachable_data_say_what_to_do(tiny_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="trainers.export"):
        Predictor.from_run(tiny_run, backend="onnx")
    moved = tmp_path / "moved"
    shutil.copytree(tiny_run, moved)
    config = R.read_train_config(moved) | {"data_dir": str(tmp_path / "gone")}
    R.write_train_config(moved, config)
    with pytest.raises(SystemExit, match="not reachable.*--images"):
        main([str(moved)])
    assert not (moved / ONNX_FILE).exists()


# --------------------------------------------------------------------------- seed and custom backbones


def make_run(root: Path, arch: str, img_size: int, labels: list[str]) -> Path:
    """A run folder written by the trainer's own writer, for an architecture without offline weights
    (random init, with a random head so the classes really differ)."""
    model = timm.create_model(arch, pretrained=False, num_classes=len(labels)).eval()
    torch.manual_seed(0)
    torch.nn.init.normal_(classifier(model).weight, std=0.05)
    run = root / arch
    run.mkdir(parents=True)
    input_size = (model.pretrained_cfg["input_size"][0], img_size, img_size)
    R.write_model(run, model, labels, None, resolve_data_config({"input_size": input_size}, model=model))
    return run


def classifier(model: torch.nn.Module) -> torch.nn.Module:
    return model.get_submodule(model.pretrained_cfg["classifier"])


OPT_IN = "opt-in, a few minutes each on a CPU: set ARENA_EXPORT_ALL=1 to export this backbone too"
EVERY_SEED = pytest.mark.skipif(not os.environ.get("ARENA_EXPORT_ALL"), reason=OPT_IN)
SEED_BACKBONES = [  # EfficientNet-Lite0 is the trained run above
    ("resnet50", 64),
    pytest.param("inception_v3", 96, marks=EVERY_SEED),  # the smallest input its stem and pooling accept is 75
    pytest.param("vgg16", 64, marks=EVERY_SEED),  # small inputs pool adaptively: only the dynamo exporter can
    pytest.param("resnet101", 64, marks=EVERY_SEED),
    pytest.param("resnet152", 64, marks=EVERY_SEED),
]


@pytest.mark.slow
@pytest.mark.parametrize(("arch", "img_size"), SEED_BACKBONES)
def test_seed_backbones_export(arch, img_size, tmp_path):
    run = make_run(tmp_path, arch, img_size, [f"class{i}" for i in range(5)])
    result = main([str(run), "--images", str(SAMPLE / "val"), "--max-images", "9"])
    assert result.ok and result.top1_agreement == 1.0 and result.batch_sizes == [1, 7]
    assert OnnxModel(run / ONNX_FILE).metadata["exporter"] == "dynamo"  # no fallback needed


def test_custom_grayscale_model_static_batch_and_half(shared_data, tmp_path):
    """mini_xception (registered by trainers.custom_models, 1 channel) on real FER2013 faces."""
    faces = shared_data("fer2013-publictest.tar.gz") / "fer2013" / "publictest"
    run = make_run(tmp_path, "mini_xception", 48, FER_LABELS)

    static = main([str(run), "--static-batch", "--batch-size", "4", "--images", str(faces), "--max-images", "10"])
    assert static.ok and static.batch_sizes == [4] and static.images == 10  # the last slice was padded
    model = OnnxModel(run / ONNX_FILE)
    assert model.static_batch == 4 and Predictor(model).mode == "L"
    assert Predictor.from_run(run, backend="onnx").predict([next(faces.rglob("*.jpg"))]).probs.shape == (1, 7)

    half = main([str(run), "--half", "--images", str(faces), "--max-images", "10"])
    assert half.ok and half.tolerance == 1e-2
    assert OnnxModel(run / ONNX_FILE).dtype == np.float16


class Histogram(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.histc(x[0], bins=4).expand(x.shape[0], 4)


def test_unexportable_model_says_why():
    with pytest.raises(ExportError) as err:
        export_onnx(Histogram(), torch.randn(2, 3, 8, 8), dynamic=True, opset=18)
    message = str(err.value)
    assert "dynamo:" in message and "torchscript:" in message and message.count("histc") >= 2


def test_export_refuses_a_model_that_does_not_reproduce(tmp_path, monkeypatch):
    """Validation is real: an ONNX file that disagrees with PyTorch is not installed."""
    run = make_run(tmp_path, "mini_xception", 48, FER_LABELS)
    original = export.export_onnx

    def drifted(model, *args):  # the exported graph no longer matches the PyTorch reference
        model = copy.deepcopy(model)
        classifier(model).bias.data += torch.arange(len(FER_LABELS), dtype=torch.float32)
        return original(model, *args)

    monkeypatch.setattr(export, "export_onnx", drifted)
    with pytest.raises(SystemExit, match="does not reproduce PyTorch"):
        main([str(run), "--images", str(SAMPLE / "val"), "--max-images", "8"])
    assert not (run / ONNX_FILE).exists()


def test_gradio_app_serves_the_onnx_backend(exported):
    """`python apps/gradio_app.py --backend onnx`: the app's model pool predicts through onnxruntime."""
    from apps.gradio_app import ModelPool, api_predict
    from apps.sources import discover

    run, _ = exported
    catalog = discover([run.parent], None, [])
    (entry,) = catalog.models
    pool = ModelPool(catalog, backend="onnx")
    with pool.use(entry.name) as predictor:
        assert predictor.backend == "onnx"
    image = evaluated_images(run)[0]
    served = api_predict(pool, {"path": image}, [entry.name])[entry.name]
    direct = Predictor.from_run(run).predict([image])
    assert max(served, key=served.get) == direct.topk(0, 1)[0][0]
