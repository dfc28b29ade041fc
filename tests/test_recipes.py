"""Seed recipes (trainers/recipes/*.yaml): each parses as a `--config`, names a real model, says what it
reproduces; representative ones run end to end on real images with tiny overrides."""

from __future__ import annotations

import pytest
import timm
from conftest import REPO

import runfolder as R
from trainers.config import parse_config
from trainers.data import DATASETS
from trainers.finetune import main
from trainers.models import resolve_model_name

RECIPES = REPO / "trainers" / "recipes"
SEED_RECIPES = sorted(p for p in RECIPES.glob("*.yaml") if p.name != "default.yaml")
TINY_OVERRIDES = ["--max-train-samples", "20", "--max-eval-samples", "20", "--epochs", "1", "--workers", "0",
                  "--batch-size", "10", "--no-record"]


def test_one_recipe_per_report_system_and_an_arena_per_task():
    names = {p.stem for p in SEED_RECIPES}
    assert {
        "cifar10-resnet50-report", "tiny-imagenet-vgg16-pretrained", "tiny-imagenet-vgg16-scratch",
        "tiny-imagenet-resnet50-pretrained", "tiny-imagenet-resnet50-scratch", "tiny-imagenet-et",
        "chest-xray-small-cnn", "chest-xray-3-small-cnn", "chest-xray-resnet152", "chest-xray-3-resnet152",
        "fer2013-mini-xception", "cnn-lecture-head-only", "cnn-lecture-full",
    } <= names
    for task in ("cifar10", "tiny-imagenet", "chest-xray", "chest-xray-3", "fer2013"):
        assert f"{task}-arena" in names
        assert parse_config(["--config", str(RECIPES / f"{task}-arena.yaml")]).model == "efficientnet_lite0"


@pytest.mark.parametrize("path", SEED_RECIPES, ids=lambda p: p.stem)
def test_recipe_parses_and_names_a_real_model(path):
    cfg = parse_config(["--config", str(path)])
    assert cfg.dataset in DATASETS
    assert timm.is_model(resolve_model_name(cfg.model).split(".")[0])
    header = [line for line in path.read_text().splitlines() if line.startswith("#")]
    assert header and f"--config trainers/recipes/{path.name}" in "\n".join(header)
    assert any(word in "\n".join(header) for word in ("Reported", "gives no", "no figure", "aimed at"))


def test_lecture_recipes_differ_only_in_strategy():
    head, full = (parse_config(["--config", str(RECIPES / f"cnn-lecture-{s}.yaml")]).to_dict()
                  for s in ("head-only", "full"))
    assert {k for k in head if head[k] != full[k]} == {"strategy"}


# (recipe, archive, extra flags): one per custom network family and one offline-pretrained arena recipe.
SMOKE = [
    ("chest-xray-3-small-cnn", "chest_xray-train.tar.gz", ["--img-size", "64"]),
    ("tiny-imagenet-et", "tiny-imagenet-200-train100.tar.gz", ["--img-size", "32"]),
    ("fer2013-mini-xception", "fer2013-train.tar.gz", ["--img-size", "40"]),
    ("cifar10-resnet50-report", "cifar10-train.tar.gz", ["--img-size", "64", "--no-pretrained"]),
    ("cifar10-lite0-report-head", "cifar10-train.tar.gz", ["--img-size", "64"]),  # offline weights, cached features
    ("chest-xray-arena", "chest_xray-train.tar.gz", ["--img-size", "64"]),
    ("cifar10-arena", "cifar10-train.tar.gz", ["--img-size", "64"]),  # --pipeline preload, randaug, mixup, EMA
]


@pytest.mark.slow
@pytest.mark.parametrize(("recipe", "archive", "extra"), SMOKE, ids=[s[0] for s in SMOKE])
def test_recipe_smoke_run_on_real_data(tmp_path, shared_data, recipe, archive, extra):
    run = main(["--config", str(RECIPES / f"{recipe}.yaml"), "--data-dir", str(shared_data(archive)),
                "--output", str(tmp_path), "--name", recipe, *TINY_OVERRIDES, *extra])
    cfg = parse_config(["--config", str(RECIPES / f"{recipe}.yaml")])
    metrics = R.read_metrics(run)
    assert metrics["dataset"] == cfg.dataset and metrics["strategy"] == cfg.strategy and metrics["epochs"] == 1
    assert R.read_config(run)["architecture"] == resolve_model_name(cfg.model).split(".")[0]
    assert 0.0 <= metrics["top1"] <= 1.0
