"""Build realistic run folders that follow the run-folder contract (docs/DESIGN.md), for card, publish and store tests.

The weights and timm config come from a real (tiny) timm model saved the way timm saves Hub repos; the metrics are
computed from seeded synthetic predictions, so every figure in metrics.json is consistent with the others.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zlib
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

LABELS = {
    "chest-xray": ["NORMAL", "PNEUMONIA"],
    "chest-xray-3": ["NORMAL", "BACTERIA", "VIRUS"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
    "fer2013": ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"],
}


_WEIGHTS_DIR = tempfile.TemporaryDirectory(prefix="arena-test-weights-")


@cache
def _timm_files(num_classes: int) -> Path:
    """config.json + model.safetensors of a tiny timm model, saved once per class count and process."""
    import timm  # imported lazily: only tests that build run folders pay for it
    from timm.models._hub import save_for_hf

    out = Path(_WEIGHTS_DIR.name) / f"timm-{num_classes}"
    model = timm.create_model("test_resnet", num_classes=num_classes)
    save_for_hf(model, str(out), safe_serialization=True)
    return out


def _auroc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney AUROC (no ties in continuous synthetic scores)."""
    ranks = score.argsort().argsort() + 1
    pos = y_true == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _metrics(dataset: str, labels: list[str], probs: np.ndarray, y_true: np.ndarray, **overrides: Any) -> dict:
    n = len(labels)
    y_pred = probs.argmax(1)
    cm = np.zeros((n, n), dtype=int)
    np.add.at(cm, (y_true, y_pred), 1)
    per_class = []
    for i, label in enumerate(labels):
        tp, predicted, support = cm[i, i], cm[:, i].sum(), cm[i].sum()
        precision = float(tp / predicted) if predicted else 0.0
        recall = float(tp / support) if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append({"label": label, "precision": precision, "recall": recall, "f1": f1, "support": int(support)})
    top5 = np.argsort(-probs, 1)[:, :5]
    metrics: dict[str, Any] = {
        "schema": 1,
        "dataset": dataset,
        "eval_split": "test",
        "num_classes": n,
        "model": "test_resnet",
        "pretrained_tag": "resnet50.a1_in1k",
        "strategy": "linear-probe",
        "top1": float((y_pred == y_true).mean()),
        "loss": float(-np.log(probs[np.arange(len(y_true)), y_true]).mean()),
        "macro_f1": float(np.mean([c["f1"] for c in per_class])),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "ece": 0.0431,
        "params": 372882,
        "macs": 9_830_400,
        "train_images_per_s": 812.5,
        "latency_ms": 3.21,
        "epochs": 2,
        "wall_s": 41.7,
        "hardware": "cpu: test runner",
        "seed": 0,
        "created": "2026-03-01T12:00:00+00:00",
        "versions": {"torch": "2.14.1", "timm": "1.0.31", "huggingface_hub": "2.4.0"},
        "git_rev": "0123456789abcdef0123456789abcdef01234567",
    }
    if n >= 5:
        metrics["top5"] = float((top5 == y_true[:, None]).any(1).mean())
    if n == 2:
        tn, fp, fn, tp = cm.ravel()
        metrics |= {
            "auroc": _auroc(y_true, probs[:, 1]),
            "sensitivity": float(tp / (tp + fn)),
            "specificity": float(tn / (tn + fp)),
            "positive_label": labels[1],
        }
    return metrics | overrides


def make_run(root: Path, run_id: str, dataset: str = "chest-xray", samples: int = 64, **overrides: Any) -> Path:
    """Create runs/<run_id>/ with every file of the run-folder contract; `overrides` replace metrics.json keys."""
    labels = LABELS[dataset]
    run = Path(root) / run_id
    run.mkdir(parents=True)
    weights = _timm_files(len(labels))
    shutil.copy(weights / "model.safetensors", run / "model.safetensors")
    config = json.loads((weights / "config.json").read_text())
    config["label_names"] = labels
    (run / "config.json").write_text(json.dumps(config, indent=2))

    rng = np.random.default_rng(zlib.crc32(run_id.encode()))
    y_true = rng.integers(0, len(labels), samples)
    logits = rng.normal(size=(samples, len(labels)))
    logits[np.arange(samples), y_true] += 1.5  # a model that is better than chance
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    metrics = _metrics(dataset, labels, probs, y_true, **overrides)
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))

    k = min(5, len(labels))
    order = np.argsort(-probs, 1)[:, :k]
    pd.DataFrame(
        {
            "sample_id": [f"test/{labels[t]}/{i:05d}.png" for i, t in enumerate(y_true)],
            "true_label": [labels[t] for t in y_true],
            "pred_label": [labels[p] for p in probs.argmax(1)],
            "topk_labels": [[labels[j] for j in row] for row in order],
            "topk_probs": [probs[i, row].tolist() for i, row in enumerate(order)],
        }
    ).to_parquet(run / "predictions.parquet")
    pd.DataFrame(
        {
            "epoch": [1, 2],
            "train_loss": [0.91, 0.62],
            "train_acc": [0.58, 0.71],
            "val_loss": [0.80, 0.66],
            "val_acc": [0.63, 0.70],
            "val_top5": [1.0, 1.0],
            "lr": [1e-3, 5e-4],
            "seconds": [20.1, 19.8],
            "wall_s": [24.5, 46.0],  # since the run started, data loading and validation included
        }
    ).to_csv(run / "history.csv", index=False)
    train_config = {
        "dataset": dataset,
        "data_dir": f"data/{dataset}",
        "model": metrics["model"],
        "pretrained": metrics["pretrained_tag"],
        "strategy": metrics["strategy"],
        "epochs": metrics["epochs"],
        "batch_size": 32,
        "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.05},
        "scheduler": "cosine",
        "img_size": 160,
        "amp": False,
        "seed": 0,
    }
    (run / "train_config.yaml").write_text(yaml.safe_dump(train_config, sort_keys=False))
    (run / "checkpoint").mkdir()
    (run / "checkpoint" / "last.pt").write_bytes(b"resumable state: must never be uploaded")
    return run


def flipped_copy(source: Path, target: Path, every: int, offset: int = 0) -> Path:
    """A second run on the same samples: the source run folder with the prediction of every `every`-th sample
    (by sample id, from `offset`) set to another class, so it is right where the source was wrong and vice versa."""
    shutil.copytree(source, target)
    predictions = pd.read_parquet(source / "predictions.parquet")
    classes = sorted(predictions["true_label"].unique())
    chosen = predictions["sample_id"].rank(method="first").astype(int).sub(1 + offset) % every == 0
    other = {c: classes[(i + 1) % len(classes)] for i, c in enumerate(classes)}
    predictions.loc[chosen, "pred_label"] = np.where(
        predictions.loc[chosen, "correct"], predictions.loc[chosen, "true_label"].map(other),
        predictions.loc[chosen, "true_label"])  # fmt: skip
    predictions["correct"] = predictions["pred_label"] == predictions["true_label"]
    predictions.to_parquet(target / "predictions.parquet", index=False)
    metrics = json.loads((source / "metrics.json").read_text())
    metrics["top1"] = float(predictions["correct"].mean())
    (target / "metrics.json").write_text(json.dumps(metrics))
    return target


def edit_train_config(run: Path, **changes: Any) -> None:
    """Set fields of a run folder's train_config.yaml (a seed, a learning rate), whatever they were."""
    config = yaml.safe_load((run / "train_config.yaml").read_text())
    (run / "train_config.yaml").write_text(yaml.safe_dump(config | changes))


def right_answers(run: Path) -> pd.Series:
    """Whether each of a run's recorded predictions is right, by sample id, read from its predictions.parquet."""
    predictions = pd.read_parquet(run / "predictions.parquet").set_index("sample_id")
    return predictions["true_label"] == predictions["pred_label"]


def correct_and_total(run: Path) -> tuple[int, int]:
    """How many of a run's recorded predictions are right, and of how many."""
    right = right_answers(run)
    return int(right.sum()), len(right)


def wilson_text(run: Path) -> str:
    """"59.1% ± 1.6": a run's top-1 and half its 95% Wilson interval, computed here with scipy."""
    from scipy.stats import binomtest

    correct, total = correct_and_total(run)
    interval = binomtest(correct, total).proportion_ci(method="wilson")
    return f"{correct / total:.1%} ± {(interval.high - interval.low) / 2 * 100:.1f}"
