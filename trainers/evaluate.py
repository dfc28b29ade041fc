"""Evaluation: logits -> the metrics.json figures (docs/DESIGN.md; torchmetrics), per-sample predictions, and the
temperature that calibrates the softmax."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
import torchmetrics.functional.classification as tmf
from scipy.optimize import minimize_scalar

from runfolder import CALIBRATED_CONFIDENCE, RELIABILITY_BINS, TEMPERATURE

# Search range of the temperature: far beyond what fine-tuned networks need (about 0.5 to 5), and bounded so that
# perfectly separated logits, whose NLL keeps falling as T -> 0, still give an answer.
TEMPERATURE_BOUNDS = (0.01, 100.0)


@dataclass(frozen=True)
class ClassMetrics:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ClassificationMetrics:
    """What a split's logits score: the trainer reads it epoch by epoch, and `as_json` is metrics.json's share.

    `top5` exists from five classes on; the binary figures (positive class = index 1) only for two classes.
    """

    num_classes: int
    num_samples: int
    top1: float
    loss: float
    macro_f1: float
    per_class: list[ClassMetrics]
    confusion_matrix: list[list[int]]
    ece: float
    top5: float | None = None
    auroc: float | None = None
    positive_label: str | None = None
    sensitivity: float | None = None
    specificity: float | None = None

    def as_json(self) -> dict[str, Any]:
        """metrics.json's keys, leaving out the figures this task has none of."""
        return {key: value for key, value in dataclasses.asdict(self).items() if value is not None}


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor,
                           classes: list[str]) -> ClassificationMetrics:
    """Top-1/top-5, per-class precision/recall/F1/support, confusion matrix, macro-F1, ECE, and for
    binary tasks AUROC, sensitivity and specificity (positive class = index 1)."""
    n = len(classes)
    probs = logits.float().softmax(dim=-1)
    targets = targets.long()
    common = dict(num_classes=n, average=None, validate_args=False)
    precision = tmf.multiclass_precision(probs, targets, **common)
    recall = tmf.multiclass_recall(probs, targets, **common)
    f1 = tmf.multiclass_f1_score(probs, targets, **common)
    support = torch.bincount(targets, minlength=n)
    confusion = tmf.multiclass_confusion_matrix(probs, targets, num_classes=n)
    binary = {}
    if n == 2:
        tn, fp, fn, tp = confusion.flatten().tolist()
        binary = dict(auroc=float(tmf.binary_auroc(probs[:, 1], targets)), positive_label=classes[1],
                      sensitivity=tp / max(1, tp + fn), specificity=tn / max(1, tn + fp))
    return ClassificationMetrics(
        num_classes=n,
        num_samples=int(targets.numel()),
        top1=_micro_accuracy(probs, targets, n, 1),
        loss=float(torch.nn.functional.cross_entropy(logits.float(), targets)),
        macro_f1=float(tmf.multiclass_f1_score(probs, targets, num_classes=n, average="macro")),
        per_class=[ClassMetrics(c, float(p), float(r), float(f), int(s))
                   for c, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)],
        confusion_matrix=confusion.tolist(),
        ece=expected_calibration_error(probs, targets),
        top5=_micro_accuracy(probs, targets, n, 5) if n >= 5 else None,
        **binary,
    )


def expected_calibration_error(probs: torch.Tensor, targets: torch.Tensor) -> float:
    """Top-1 ECE over RELIABILITY_BINS equal-width confidence bins (the bins of the dashboard's reliability diagram)."""
    return float(tmf.multiclass_calibration_error(probs, targets.long(), num_classes=probs.shape[-1],
                                                  n_bins=RELIABILITY_BINS, validate_args=False))


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The softmax temperature T > 0 that minimises the NLL of `logits / T` (temperature scaling, Guo et al. 2017).

    scipy's bounded Brent search on log T rather than torch LBFGS: one scalar whose NLL is unimodal in log T (the
    NLL is convex in 1/T), so a bracketing search needs no learning rate, no gradient and no iteration budget to
    tune, and it cannot step to T <= 0. Each evaluation is one cross-entropy over the cached logits.
    """
    if logits.ndim != 2 or len(logits) == 0 or len(logits) != len(targets):
        raise ValueError(f"fit_temperature needs (N, C) logits and N targets, N > 0; got {tuple(logits.shape)} "
                         f"logits and {tuple(targets.shape)} targets")
    logits, targets = logits.double(), targets.long()

    def nll(log_t: float) -> float:
        return float(torch.nn.functional.cross_entropy(logits / math.exp(log_t), targets))

    low, high = (math.log(t) for t in TEMPERATURE_BOUNDS)
    result = minimize_scalar(nll, bounds=(low, high), method="bounded", options={"xatol": 1e-6})
    return math.exp(result.x)


def calibration_metrics(logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> dict:
    """metrics.json's calibration keys: the temperature, the split it was fit on (always validation: the test split
    stays unseen), and the ECE of `logits` at it (`ece` keeps the uncalibrated figure)."""
    probs = (logits.float() / temperature).softmax(dim=-1)
    return {TEMPERATURE: temperature, "calibration_split": "val",
            "ece_calibrated": expected_calibration_error(probs, targets)}


def _micro_accuracy(probs: torch.Tensor, targets: torch.Tensor, n: int, k: int) -> float:
    return float(tmf.multiclass_accuracy(probs, targets, num_classes=n, average="micro", top_k=k))


TOP_K = 5  # predictions.parquet keeps each sample's five likeliest classes (fewer when there are fewer)


def predictions_frame(logits: torch.Tensor, targets: torch.Tensor, sample_ids: list[str], classes: list[str],
                      temperature: float) -> pd.DataFrame:
    """One row per evaluated sample, for error galleries: id, true/predicted label, top-k labels and probs (the
    uncalibrated softmax), and the top-1 probability at the run's temperature (the labels do not change)."""
    probs = logits.float().softmax(dim=-1)
    top_p, top_i = probs.topk(min(TOP_K, len(classes)), dim=-1)
    frame = pd.DataFrame({
        "sample_id": sample_ids,
        "true_label": [classes[i] for i in targets.tolist()],
        "pred_label": [classes[i] for i in top_i[:, 0].tolist()],
        "correct": (top_i[:, 0] == targets).tolist(),
        "confidence": top_p[:, 0].tolist(),
        "topk_labels": [[classes[i] for i in row] for row in top_i.tolist()],
        "topk_probs": top_p.tolist(),
    })
    frame[CALIBRATED_CONFIDENCE] = (logits.float() / temperature).softmax(dim=-1).amax(dim=-1).tolist()
    return frame
