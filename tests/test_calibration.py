"""Temperature scaling: the fit, what a run folder records, Predictor with and without it, old runs unchanged, and
the dashboard's reliability diagram on real runs."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from conftest import REPO, SAMPLE, evaluated_images, train_tiny
from streamlit.testing.v1 import AppTest

import runfolder as R
from apps import dashboard_data as data
from apps import gradio_app
from apps.sources import discover
from leaderboard.store import Store
from tests.test_dashboard import APP, TIMEOUT, charts, show, texts
from trainers import predict as batch_predict
from trainers.evaluate import expected_calibration_error, fit_temperature
from trainers.inference import Predictor

CIFAR_RUN = REPO / "reference" / "cifar10-efficientnet_lite0"
CALIBRATION_METRICS = (R.TEMPERATURE, "ece_calibrated", "calibration_split")


@pytest.fixture(scope="module")
def old_run(tmp_path_factory) -> Path:
    """The shipped CIFAR-10 run as a run folder written before calibration existed: no temperature anywhere."""
    run = Path(shutil.copytree(CIFAR_RUN, tmp_path_factory.mktemp("old") / CIFAR_RUN.name))
    config, metrics = R.read_config(run), R.read_metrics(run)
    R.write_text(run / R.CONFIG, json.dumps({k: v for k, v in config.items() if k != R.TEMPERATURE}))
    R.write_text(run / R.METRICS, json.dumps({k: v for k, v in metrics.items() if k not in CALIBRATION_METRICS}))
    predictions = pd.read_parquet(run / R.PREDICTIONS)
    predictions.drop(columns=[R.CALIBRATED_CONFIDENCE], errors="ignore").to_parquet(run / R.PREDICTIONS, index=False)
    return run
SAMPLE_IMAGES = sorted(str(p) for p in (SAMPLE / "val").rglob("*.jpg"))[:8]


def calibrated_logits(n: int = 20_000, classes: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels drawn from softmax(logits): calibrated by construction, so the NLL-optimal T is 1."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, generator=generator) * 3
    targets = torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(1)
    return logits, targets


@pytest.mark.parametrize("scale", [1 / 3, 1.0, 3.0])
def test_fit_recovers_a_known_temperature(scale):
    """Calibrated logits multiplied by `scale` need T = scale to be calibrated again."""
    logits, targets = calibrated_logits()
    temperature = fit_temperature(logits * scale, targets)
    assert temperature == pytest.approx(scale, rel=0.05)
    if scale != 1.0:  # the miscalibrated logits' ECE falls to that of the calibrated ones
        before = expected_calibration_error((logits * scale).softmax(-1), targets)
        after = expected_calibration_error((logits * scale / temperature).softmax(-1), targets)
        assert after < 0.02 < before


def test_fit_refuses_empty_or_mismatched_input():
    with pytest.raises(ValueError, match="N > 0"):
        fit_temperature(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(4, 3\) logits"):
        fit_temperature(torch.zeros(4, 3), torch.zeros(5, dtype=torch.long))


def diagram_ece(confidence: pd.Series, correct: pd.Series) -> float:
    """The ECE the reliability diagram shows: its bins' |accuracy - confidence| weighted by their counts."""
    bins = data.reliability_bins(confidence, correct)
    return float((bins["count"] * (bins["accuracy"] - bins["confidence"]).abs()).sum() / len(confidence))


@pytest.mark.parametrize("run", R.find_runs(REPO / "reference"), ids=lambda run: run.name)
def test_reliability_bins_reproduce_the_recorded_ece_of_shipped_runs(run):
    predictions = data.read_predictions(str(run))
    assert diagram_ece(predictions["confidence"], predictions["correct"]) == pytest.approx(
        R.read_metrics(run)["ece"], abs=1e-6)


def test_tiny_run_records_the_temperature_and_calibrated_ece(tiny_run):
    metrics, config = R.read_metrics(tiny_run), R.read_config(tiny_run)
    temperature = metrics[R.TEMPERATURE]
    assert config[R.TEMPERATURE] == temperature > 0 and temperature != 1.0
    assert metrics["calibration_split"] == metrics["eval_split"] == "val"
    # no `ece_calibrated <= ece`: the temperature minimises the validation NLL, not the ECE, and on the tiny run's
    # 20 images the ECE at it can be higher (the fit itself is checked in the test with a test split below)
    # timm's own loader ignores the extra top-level key and still loads the model with its labels
    model = timm.create_model(f"local-dir:{tiny_run}", pretrained=True)
    assert model.pretrained_cfg["label_names"] == config["label_names"]
    # predictions.parquet keeps the raw softmax and adds the calibrated top-1; each reproduces its recorded ECE
    predictions = data.read_predictions(str(tiny_run))
    for column, key in (("confidence", "ece"), (R.CALIBRATED_CONFIDENCE, "ece_calibrated")):
        assert diagram_ece(predictions[column], predictions["correct"]) == pytest.approx(metrics[key], abs=1e-6)


def test_predictor_applies_the_temperature_unless_told_not_to(tiny_run):
    temperature = R.read_metrics(tiny_run)[R.TEMPERATURE]
    calibrated = Predictor.from_run(tiny_run).predict(SAMPLE_IMAGES)
    raw = Predictor.from_run(tiny_run, calibrated=False).predict(SAMPLE_IMAGES)
    assert raw.probs.argmax(1).tolist() == calibrated.probs.argmax(1).tolist()
    assert not np.allclose(raw.probs, calibrated.probs, atol=1e-3)
    # softmax(log p / T) = softmax(logits / T): the calibrated probabilities are the raw ones at temperature T
    expected = torch.from_numpy(np.log(raw.probs) / temperature).softmax(-1).numpy()
    assert np.allclose(calibrated.probs, expected, atol=1e-5)
    # the evaluator's stored confidences are what the two predictors give on the evaluated images
    stored = pd.read_parquet(tiny_run / R.PREDICTIONS)
    for calibrate, column in ((True, R.CALIBRATED_CONFIDENCE), (False, "confidence")):
        got = Predictor.from_run(tiny_run, calibrated=calibrate).predict(evaluated_images(tiny_run))
        assert np.allclose(got.probs.max(1), stored[column], atol=1e-5)


def test_batch_prediction_without_calibration(tiny_run):
    calibrated = batch_predict.main([str(tiny_run), *SAMPLE_IMAGES[:3], "--topk", "1"])
    raw = batch_predict.main([str(tiny_run), *SAMPLE_IMAGES[:3], "--topk", "1", "--no-calibration"])
    expected = Predictor.from_run(tiny_run, calibrated=False).predict(SAMPLE_IMAGES[:3]).probs.max(1)
    assert np.allclose([row["prob_1"] for row in raw], expected, atol=1e-6)
    assert not np.allclose([row["prob_1"] for row in calibrated], expected, atol=1e-3)


def test_gradio_app_without_calibration_shows_the_raw_softmax(tiny_run):
    assert gradio_app.parse_args([]).calibrated and not gradio_app.parse_args(["--no-calibration"]).calibrated
    image = {"path": SAMPLE_IMAGES[0], "orig_name": Path(SAMPLE_IMAGES[0]).name}
    for calibrate in (True, False):
        pool = gradio_app.ModelPool(discover([tiny_run.parent], None, []), calibrated=calibrate)
        shown = gradio_app.api_predict(pool, image, [tiny_run.name])[tiny_run.name]
        expected = Predictor.from_run(tiny_run, calibrated=calibrate).predict(SAMPLE_IMAGES[:1]).probs[0]
        assert np.allclose(list(shown.values()), expected, atol=1e-6)


def test_old_run_folder_without_temperature_is_unchanged(old_run):
    assert R.TEMPERATURE not in R.read_config(old_run) and R.TEMPERATURE not in R.read_metrics(old_run)
    predictor = Predictor.from_run(old_run)
    assert predictor.temperature == 1.0
    model = timm.create_model(f"local-dir:{old_run}", pretrained=True)
    direct = Predictor(model).predict(SAMPLE_IMAGES)  # the plain softmax, as before calibration existed
    assert np.array_equal(predictor.predict(SAMPLE_IMAGES).probs, direct.probs)
    assert data.calibration_note(R.read_metrics(old_run)).endswith("raw softmax (T = 1).")


def test_bad_temperature_in_config_is_named(tmp_path, old_run):
    run = Path(shutil.copytree(old_run, tmp_path / "run"))
    config = R.read_config(run)
    for bad in (-1.0, 0, "2", float("inf")):
        R.write_text(run / R.CONFIG, json.dumps(config | {R.TEMPERATURE: bad}))
        with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
            Predictor.from_run(run)


def test_temperature_is_fit_on_validation_when_a_test_split_exists(tmp_path):
    """With a test split the evaluation is on test, and the temperature comes from the validation images only."""
    root = tmp_path / "data"
    shutil.copytree(SAMPLE / "train", root / "train")
    for split, keep in (("val", slice(0, 2)), ("test", slice(2, 4))):  # 20 images each: all of them evaluated
        for folder in sorted((SAMPLE / "val").iterdir()):
            (root / split / folder.name).mkdir(parents=True)
            for image in sorted(folder.iterdir())[keep]:
                shutil.copy(image, root / split / folder.name / image.name)
    run = train_tiny(tmp_path / "runs", "--dataset", "folder", "--data-dir", str(root), name="with-test")
    metrics = R.read_metrics(run)
    assert metrics["eval_split"] == "test" and metrics["calibration_split"] == "val"
    val_images = sorted(str(p) for p in (root / "val").rglob("*.jpg"))
    raw = Predictor.from_run(run, calibrated=False).predict(val_images)
    labels = torch.tensor([raw.labels.index(Path(p).parent.name) for p in val_images])
    refit = fit_temperature(torch.from_numpy(np.log(raw.probs)), labels)  # log-softmax: the logits up to a shift
    assert refit == pytest.approx(metrics[R.TEMPERATURE], rel=1e-3)
    # what soups choose by: the validation top-1, recorded although the run is scored on test
    assert metrics[R.VAL_TOP1] == pytest.approx((raw.probs.argmax(1) == labels.numpy()).mean())
    test_ids = set(pd.read_parquet(run / R.PREDICTIONS)["sample_id"])
    assert test_ids and all(sample.startswith("test/") for sample in test_ids)  # relative to --data-dir


@pytest.fixture
def dashboard(tmp_path, tiny_run, old_run, monkeypatch) -> AppTest:
    store = Store(tmp_path / "arena.db")
    assert not store.ingest([old_run, tiny_run]).skipped
    monkeypatch.setenv("ARENA_DB", str(tmp_path / "arena.db"))
    return show(AppTest.from_file(APP, default_timeout=TIMEOUT).run(), "Run details")


def curves(at: AppTest) -> dict[str, dict]:
    return {trace["name"]: trace for trace in charts(at)["reliability"]["data"] if trace["type"] == "scatter"}


def decoded(values: list | dict) -> np.ndarray:
    """A 1-D trace array: plotly serialises numpy arrays as base64 typed arrays ({dtype, bdata})."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values, dtype=float)


def test_reliability_diagram_of_a_run_without_temperature(dashboard, old_run):
    dashboard.selectbox(key="detail_run").set_value(old_run.name).run()
    assert not dashboard.exception
    figure = charts(dashboard)["reliability"]
    assert set(curves(dashboard)) == {"perfect calibration", "uncalibrated"}
    (counts,) = (trace for trace in figure["data"] if trace["type"] == "bar")
    assert decoded(counts["y"]).sum() == R.read_metrics(old_run)["num_samples"] == 5000
    accuracy = decoded(curves(dashboard)["uncalibrated"]["y"])
    assert ((accuracy >= 0) & (accuracy <= 1)).all() and len(accuracy) == len(decoded(counts["y"]))
    assert "No temperature" in texts(dashboard.caption)


def test_reliability_diagram_before_and_after_on_a_calibrated_run(dashboard, tiny_run):
    dashboard.selectbox(key="detail_run").set_value(tiny_run.name).run()
    assert not dashboard.exception
    temperature = R.read_metrics(tiny_run)[R.TEMPERATURE]
    assert set(curves(dashboard)) == {"perfect calibration", "uncalibrated", f"calibrated (T = {temperature:.2f})"}
    assert f"T = {temperature:.3f}, fit on the val split" in texts(dashboard.caption)
    assert "in-sample" in texts(dashboard.caption)  # evaluated on validation too
