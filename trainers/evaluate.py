"""Evaluation: logits over a split -> the metrics of DESIGN.md (torchmetrics) and per-sample predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torchmetrics.functional.classification as tmf


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor, classes: list[str]) -> dict:
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
    metrics = {
        "num_classes": n,
        "num_samples": int(targets.numel()),
        "top1": _micro_accuracy(probs, targets, n, 1),
        "loss": float(torch.nn.functional.cross_entropy(logits.float(), targets)),
        "macro_f1": float(tmf.multiclass_f1_score(probs, targets, num_classes=n, average="macro")),
        "per_class": [
            {"label": c, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for c, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
        ],
        "confusion_matrix": confusion.tolist(),
        "ece": float(tmf.multiclass_calibration_error(probs, targets, num_classes=n, n_bins=15)),
    }
    if n >= 5:
        metrics["top5"] = _micro_accuracy(probs, targets, n, 5)
    if n == 2:
        tn, fp, fn, tp = confusion.flatten().tolist()
        metrics |= {
            "auroc": float(tmf.binary_auroc(probs[:, 1], targets)),
            "positive_label": classes[1],
            "sensitivity": tp / max(1, tp + fn),
            "specificity": tn / max(1, tn + fp),
        }
    return metrics


def _micro_accuracy(probs: torch.Tensor, targets: torch.Tensor, n: int, k: int) -> float:
    return float(tmf.multiclass_accuracy(probs, targets, num_classes=n, average="micro", top_k=k))


def per_class_recall(confusion: list[list[int]]) -> list[float]:
    matrix = np.asarray(confusion, dtype=np.float64)
    return (np.diag(matrix) / np.maximum(matrix.sum(axis=1), 1)).tolist()


def predictions_frame(
    logits: torch.Tensor, targets: torch.Tensor, sample_ids: list[str], classes: list[str], k: int = 5
) -> pd.DataFrame:
    """One row per evaluated sample, for error galleries: id, true/predicted label, top-k labels and probs."""
    probs = logits.float().softmax(dim=-1)
    top_p, top_i = probs.topk(min(k, len(classes)), dim=-1)
    return pd.DataFrame({
        "sample_id": sample_ids,
        "true_label": [classes[i] for i in targets.tolist()],
        "pred_label": [classes[i] for i in top_i[:, 0].tolist()],
        "correct": (top_i[:, 0] == targets).tolist(),
        "confidence": top_p[:, 0].tolist(),
        "topk_labels": [[classes[i] for i in row] for row in top_i.tolist()],
        "topk_probs": top_p.tolist(),
    })
