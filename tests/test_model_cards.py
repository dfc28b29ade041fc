"""Model cards: Hub round trip of the eval results, offline metadata validation, body content."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from fixtures_runs import make_run
from huggingface_hub import ModelCard, ModelCardData, metadata_load
from huggingface_hub.repocard import REGEX_YAML_BLOCK
from huggingface_hub.repocard_data import eval_results_to_model_index, model_index_to_eval_results
from PIL import Image

import runfolder as R
from model_cards.card import base_model_id, metrics_from_eval_results, write_card
from model_cards.datasets import DATASETS, dataset_info, dataset_key
from runfolder.metrics import HUB_METRICS

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    built = {
        "binary": make_run(root, "chest-binary", dataset="chest-xray"),
        "multiclass": make_run(root, "cifar-multi", dataset="cifar10"),
    }
    write_card(built["binary"])
    write_card(built["multiclass"], hub_repo="acme/resnet-cifar10")
    return built


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


@pytest.mark.parametrize(
    ("kind", "keys"), [("binary", {"top1", "macro_f1", "auroc"}), ("multiclass", {"top1", "top5", "macro_f1"})]
)
def test_eval_results_round_trip_exactly(runs: dict[str, Path], kind: str, keys: set[str]) -> None:
    run = runs[kind]
    metrics = _metrics(run)
    card = ModelCard.load(run / "README.md")
    results = card.data.eval_results
    assert metrics_from_eval_results(results) == {key: metrics[key] for key in keys}  # exact, not approximate
    assert {r.dataset_split for r in results} == {"test"}
    assert {r.task_type for r in results} == {"image-classification"}
    assert card.data.model_name == run.name


def test_front_matter(runs: dict[str, Path]) -> None:
    data = ModelCard.load(runs["multiclass"] / "README.md").data
    assert data.library_name == "timm"
    assert data.pipeline_tag == "image-classification"
    assert data.base_model == "timm/resnet50.a1_in1k"
    assert data.datasets == ["uoft-cs/cifar10"]
    assert data.license == "apache-2.0"
    assert {"image-classification", "timm", "cifar10"} <= set(data.tags)
    assert set(data.metrics) == {"accuracy", "top_5_accuracy", "f1"}
    binary = ModelCard.load(runs["binary"] / "README.md").data
    assert binary.license == "cc-by-4.0" and "roc_auc" in binary.metrics


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_front_matter_passes_offline_metadata_validation(runs: dict[str, Path], kind: str) -> None:
    text = (runs[kind] / "README.md").read_text()
    assert REGEX_YAML_BLOCK.search(text), "the Hub's own front-matter regex must find the YAML block"
    meta = metadata_load(runs[kind] / "README.md")
    ModelCardData(**meta)  # strict parse: raises on an invalid model-index
    name, results = model_index_to_eval_results(meta["model-index"])
    assert name == runs[kind].name
    assert eval_results_to_model_index(name, results) == meta["model-index"]
    for entry in meta["model-index"][0]["results"]:
        assert {"type", "name", "split"} <= set(entry["dataset"])
        assert all({"type", "value", "name"} <= set(metric) for metric in entry["metrics"])
    assert isinstance(yaml.safe_load(yaml.safe_dump(meta)), dict)


def test_body(runs: dict[str, Path]) -> None:
    multi = (runs["multiclass"] / "README.md").read_text()
    assert 'timm.create_model("hf-hub:acme/resnet-cifar10", pretrained=True)' in multi
    assert 'gr.Interface(predict, gr.Image(type="pil")' in multi
    assert f"![Confusion matrix]({R.CONFUSION_PNG})" in multi
    assert (runs["multiclass"] / R.CONFUSION_PNG).read_bytes().startswith(b"\x89PNG")
    for label in ["airplane", "truck"]:
        assert re.search(rf"^\| {label} \| [0-9.]+% \| [0-9.]+% \| [0-9.]+% \| \d+ \|$", multi, re.MULTILINE)
    assert "| `optimizer.lr` | 0.0010 |" in multi
    assert "| Top-5 accuracy |" in multi
    assert "Not a medical device" not in multi
    binary = (runs["binary"] / "README.md").read_text()
    assert "Not a medical device" in binary and "CC BY 4.0" in binary
    assert "hf-hub:ORG/NAME" in binary and "local-dir:runs/chest-binary" in binary
    assert "**PNEUMONIA** as the positive class" in binary


def test_no_pretrained_weights_omits_base_model(tmp_path: Path) -> None:
    run = make_run(tmp_path, "scratch", dataset="fer2013", pretrained_tag="none")
    card = ModelCard.load(write_card(run))
    assert card.data.base_model is None
    assert card.data.datasets is None  # FER2013 has no canonical Hub copy
    assert card.data.license == "other" and card.data.license_name == "fer2013-terms"
    assert "random initialisation" in card.text and "must not be used to make decisions about people" in card.text
    assert not list(run.glob(".*.tmp")), "atomic writes leave no temp files"


@pytest.mark.parametrize("key", [*DATASETS, "hf:acme/leaves"])
def test_dataset_mapping_round_trips(key: str) -> None:
    info = dataset_info(key)
    assert dataset_key(info.hub_type, info.config) == key
    assert info.hub_id is None or "/" in info.hub_id


def test_unknown_dataset_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown dataset"):
        dataset_info("mnist")


def test_metric_specs_are_unique() -> None:
    assert len({spec.hub_type for spec in HUB_METRICS}) == len(HUB_METRICS)


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("resnet50.a1_in1k", "timm/resnet50.a1_in1k"),
        ("tf_efficientnet_lite0.in1k", "timm/tf_efficientnet_lite0.in1k"),
        ("hf-hub:acme/resnet-x", "acme/resnet-x"),
        ("none", None),
        ("file:resnet50-0676ba61.pth", None),
        ("resnet50", None),
    ],
)
def test_base_model_id(tag: str, expected: str | None) -> None:
    assert base_model_id(tag) == expected


def test_real_trainer_run_card_round_trips(tiny_run: Path) -> None:
    """The card the trainer wrote at the end of a real tiny run carries metrics.json's figures exactly."""
    metrics = _metrics(tiny_run)
    card = ModelCard.load(tiny_run / "README.md")
    expected = {spec.key: metrics[spec.key] for spec in HUB_METRICS if metrics.get(spec.key) is not None}
    assert metrics_from_eval_results(card.data.eval_results) == expected
    assert card.data.model_name == tiny_run.name and card.data.library_name == "timm"
    ModelCardData(**metadata_load(tiny_run / "README.md"))


@pytest.mark.parametrize("name", ["fer2013-mini_xception", "chest-xray-efficientnet_lite0"])
def test_how_to_use_runs_as_written(name: str, tmp_path: Path) -> None:
    """The card's usage code, run in a fresh interpreter on a shipped run folder (the Hub id swapped for its
    `local-dir:` path): a study's own grayscale network needs its registering import and a 1-channel image."""
    run = REPO / "reference" / name
    card = ModelCard.load(run / "README.md").text
    snippet = re.search(r"## How to use\n\n```python\n(.*?)```", card, re.DOTALL).group(1)
    snippet = snippet.replace("hf-hub:ORG/NAME", f"local-dir:{run}").replace("example.jpg", str(tmp_path / "x.png"))
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)).save(tmp_path / "x.png")
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", snippet], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    probs = ast.literal_eval(done.stdout.strip())
    assert list(probs) == json.loads((run / "config.json").read_text())["label_names"]
    assert sum(probs.values()) == pytest.approx(1, abs=1e-4)


def test_every_dataset_the_trainer_reads_has_a_card_entry() -> None:
    """model_cards sits below trainers in the import graph, so it keeps its own table of datasets: a reader added to
    trainers.data without an entry here would fail at the card, after the training."""
    from model_cards.datasets import DATASETS as CARD_DATASETS
    from trainers.data import DATASETS as READERS

    assert set(READERS) == set(CARD_DATASETS)
