"""The reference models shipped in reference/: complete run folders whose fp16 weights are real, trained models."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from safetensors import safe_open

import runfolder as R
from trainers.inference import Predictor

REPO = Path(__file__).resolve().parents[1]
REFERENCES = sorted(p.parent for p in (REPO / "reference").glob("*/metrics.json"))
EXAMPLES = REPO / "apps" / "examples"
# dataset -> the archive in ../shared/data holding its evaluation images (sample ids are relative to its top)
ARCHIVES = {
    "cifar10": "cifar10-train.tar.gz",
    "tiny-imagenet": "tiny-imagenet-200-train100.tar.gz",
    "chest-xray": "chest_xray-train.tar.gz",
    "chest-xray-3": "chest_xray-train.tar.gz",
    "fer2013": "fer2013-publictest.tar.gz",
}


def test_one_reference_model_per_task():
    datasets = sorted(R.read_metrics(run)["dataset"] for run in REFERENCES)
    assert datasets == sorted(ARCHIVES)


@pytest.mark.parametrize("run", REFERENCES, ids=[r.name for r in REFERENCES])
def test_reference_is_a_complete_fp16_run_folder(run):
    for name in (R.CONFIG, R.WEIGHTS, R.CARD, R.METRICS, R.HISTORY, R.TRAIN_CONFIG, R.PREDICTIONS):
        assert (run / name).is_file(), name
    assert not (run / R.CHECKPOINT).exists()  # optimizer state does not ship
    with safe_open(run / R.WEIGHTS, "pt") as weights:
        dtypes = {str(weights.get_slice(k).get_dtype()) for k in weights.keys()}  # noqa: SIM118 (not a dict)
    assert "F16" in dtypes and "F32" not in dtypes
    assert (run / R.WEIGHTS).stat().st_size < 10e6
    metrics = R.read_metrics(run)
    assert len(pd.read_parquet(run / R.PREDICTIONS)) == sum(c["support"] for c in metrics["per_class"])
    assert "model-index" in (run / R.CARD).read_text()


def example_label(image: Path, dataset: str) -> str:
    """Example files are named <true class>_<source name>; chest-xray-3 reads bacteria/virus from the name, and
    Tiny ImageNet's class is the wnid of the source name (goldfish_n01443537_0.JPEG)."""
    if dataset == "tiny-imagenet":
        return image.name.split("_")[1]
    label = image.name.split("_")[0]
    if dataset == "chest-xray-3" and label == "PNEUMONIA":
        return "BACTERIA" if "bacteria" in image.name else "VIRUS"
    return label


def test_reference_models_recognise_the_apps_example_images():
    """Random or broken weights get about a quarter of these right; the shipped models most of them."""
    right, total = 0, 0
    for run in REFERENCES:
        dataset = R.read_metrics(run)["dataset"]
        images = [p for p in sorted((EXAMPLES / dataset.removesuffix("-3")).iterdir())
                  if p.suffix.lower() in (".jpg", ".jpeg") and p.name != "grace_hopper.jpg"]
        predictor = Predictor.from_run(run)
        probs = predictor.predict([str(p) for p in images]).probs
        got = [predictor.labels[i] for i in probs.argmax(axis=1)]
        right += sum(g == example_label(p, dataset) for g, p in zip(got, images, strict=True))
        total += len(images)
    assert total >= 12
    assert right / total >= 0.75, f"{right} of {total} example images right"


@pytest.mark.parametrize("run", REFERENCES, ids=[r.name for r in REFERENCES])
def test_fp16_weights_reproduce_the_recorded_predictions(run, shared_data):
    """On real images of its evaluation split, the shipped model predicts what predictions.parquet recorded."""
    root = shared_data(ARCHIVES[R.read_metrics(run)["dataset"]])
    recorded = pd.read_parquet(run / R.PREDICTIONS).groupby("true_label").head(8)  # every class
    predictor = Predictor.from_run(run)
    probs = predictor.predict([str(root / s) for s in recorded.sample_id]).probs
    got = pd.Series([predictor.labels[i] for i in probs.argmax(axis=1)], index=recorded.index)
    assert (got == recorded.pred_label).mean() >= 0.97
