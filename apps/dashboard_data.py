"""Data behind the Streamlit leaderboard (apps/dashboard.py): store rows, run-folder files, derived tables.

Pure pandas/numpy, no Streamlit, so every rule here (families, Pareto frontier, flags, comparisons) is tested
directly. Fractions stay in 0–1 as in metrics.json.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

import verdict as V
from leaderboard.columns import short_model_name
from leaderboard.standings import VERDICT_COLUMNS, seed_text, with_verdict
from leaderboard.store import default_db_path
from runfolder import (  # noqa: F401  (re-exported for the page)
    CALIBRATED_CONFIDENCE,
    CONFIG,
    FILE_TAG_PREFIX,
    HISTORY,
    METRICS,
    NO_PRETRAINING,
    PREDICTIONS,
    RELIABILITY_BINS,
    TEMPERATURE,
    TRAIN_CONFIG,
    WEIGHTS,
    MetricsError,
    read_config,
    read_history,
    read_metrics,
    whole_wall_s,
    write_json,
)
from runfolder.metrics import COSTS, METRIC_SPECS, SCORES

# The grid's metric columns (not the store's METRIC_COLUMNS), each figure in its display unit (MetricSpec.column:
# params → params_m, in millions).
TRAINING_COSTS = ("train_images_per_s", "whole_wall_s")
DISPLAY_COLUMNS = {METRIC_SPECS[key].column: METRIC_SPECS[key] for key in (*SCORES, *COSTS, *TRAINING_COSTS)}
# What a run scored comes before how it was made, so the figures it is ranked by show without scrolling sideways.
TABLE_COLUMNS = ["run_id", "best", "tier", "dataset", "top1_ci", "seeds", *DISPLAY_COLUMNS, "model", "strategy",
                 "pretrained_on", "pretrained_tag", "epochs", "date", "hub_url", "files", "note"]  # fmt: skip
CSV_EXTRA_COLUMNS = ["family", "eval_split", "num_classes", "params", "macs", "wall_s", "git_rev", "hub_repo",
                     "run_path", *(column for column in VERDICT_COLUMNS if column not in TABLE_COLUMNS)]
FILES_OK, HUB_ONLY = "ok", "Hub only"
CURVES = {  # title: (history.csv column, a runfolder.EpochRow field: legend name, y tick format)
    "Loss": ({"train_loss": "train", "val_loss": "val"}, ""),
    "Accuracy": ({"train_acc": "train", "val_acc": "val", "val_top5": "val top-5"}, ".0%"),
    "Learning rate": ({"lr": "lr"}, ".1e"),
}
BEST_MARK = "★"  # in DejaVu Sans: emoji fonts are often missing on Linux browsers
OVERLAP_NOTE = "ImageNet-pretrained: pretraining overlaps the evaluation classes"
UNKNOWN_PRETRAINING_NOTE = "pretraining data unknown: may overlap ImageNet"


def db_path(argv: Sequence[str]) -> Path:
    """The store: `--db PATH` (after `streamlit run apps/dashboard.py --`), else $ARENA_DB, else the default."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--db", type=Path)
    db = parser.parse_known_args(list(argv))[0].db
    return db.expanduser() if db else default_db_path()


def file_signature(path: Path) -> tuple[int, int]:
    """(mtime_ns, size), (0, 0) when absent: part of a cache key so that cached reads follow the file."""
    try:
        stat = path.stat()
    except OSError:
        return (0, 0)
    return (stat.st_mtime_ns, stat.st_size)


def store_signature(db: Path) -> tuple[tuple[int, int], ...]:
    """Changes whenever a run is recorded: the database's signature and its WAL file's.

    The WAL file matters: in WAL mode new rows land there and the main file only changes at a checkpoint. (SQLite
    checkpoints when the last connection closes, so the signature also moves once after a write: one extra reload.)
    """
    return file_signature(db), file_signature(db.with_name(db.name + "-wal"))


def family(model: str) -> str:
    """Backbone family from a timm name: resnet50 → resnet, tf_efficientnet_lite0 → efficientnet, vgg16 → vgg."""
    name = short_model_name(model.lower())
    match = re.match(r"([a-z]+?)(?:v\d|\d|_|$)", name)
    return match.group(1) if match else name


def pretrained_on(tag: str | None) -> str:
    """What the backbone was pretrained on, readable: 'resnet50.a1_in1k' → 'ImageNet-1k'."""
    if not tag:
        return "unknown"
    if tag == NO_PRETRAINING:
        return "none (random init)"
    if tag.startswith(FILE_TAG_PREFIX):
        return f"local file {tag.removeprefix(FILE_TAG_PREFIX)}"
    suffix = tag.split(".", 1)[1] if "." in tag else ""
    imagenet = [f"ImageNet-{size}k" for size in re.findall(r"in(1|12|21|22)k", suffix)]
    if imagenet:
        return " → ".join(imagenet)  # e.g. in21k_ft_in1k: pretrained on 21k, then fine-tuned on 1k
    return "ImageNet" if "imagenet" in suffix.lower() else (suffix or tag)


def pretraining_note(dataset: str, tag: str | None) -> str:
    """Tiny ImageNet is drawn from ImageNet: ImageNet pretraining has seen its classes (and possibly its images)."""
    if not re.search(r"tiny[-_]?imagenet", dataset.lower()):
        return ""
    source = pretrained_on(tag)
    if "ImageNet" in source:
        return OVERLAP_NOTE
    return UNKNOWN_PRETRAINING_NOTE if source.startswith(("local file", "unknown")) else ""


@lru_cache(maxsize=1 << 16)
def _file_problem(path: Path, signature: tuple[int, int]) -> str:
    """'' when the file looks readable, else what is wrong.

    Cheap checks (every row pays them), memoised on the file's (mtime, size): when the store changes, the page
    re-reads only the files that changed.
    """
    name = path.name
    if signature == (0, 0):
        return f"missing {name}"
    if signature[1] == 0:
        return f"empty {name}"
    try:
        if name == METRICS:
            read_metrics(path.parent)
        elif name == CONFIG:
            read_config(path.parent)["label_names"]
        elif name == HISTORY:
            with path.open(encoding="utf-8", errors="replace") as f:
                if not f.readline().startswith("epoch,"):
                    return f"corrupt {name}: no epoch column"
        elif name == PREDICTIONS:
            with path.open("rb") as f:
                head = f.read(4)
                f.seek(-4, 2)
                if head != b"PAR1" or f.read(4) != b"PAR1":  # a parquet file starts and ends with its magic
                    return f"corrupt {name}: not a parquet file"
    except (MetricsError, ValueError, KeyError, TypeError, OSError) as error:
        return f"corrupt {name} ({error})"
    return ""


def run_files_status(run_path: str | None) -> str:
    """FILES_OK, HUB_ONLY (no local folder recorded), or the run folder's problems, '; '-joined."""
    if not run_path:
        return HUB_ONLY
    run = Path(run_path)
    if not run.is_dir():
        return f"run folder missing: {run}"
    paths = [run / name for name in (METRICS, CONFIG, WEIGHTS, HISTORY, PREDICTIONS)]
    return "; ".join(filter(None, (_file_problem(path, file_signature(path)) for path in paths))) or FILES_OK


def leaderboard_csv(table: pd.DataFrame) -> str:
    """The rows shown, as CSV: the table's columns plus the raw store fields behind them (no metrics JSON)."""
    return table[[*TABLE_COLUMNS, *CSV_EXTRA_COLUMNS]].to_csv(index=False)


def leaderboard_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Store rows plus the derived columns the dashboard shows (family, pretraining, units, flags, links) and the
    verdict's (tier, top-1 interval, seed group)."""
    table = with_verdict(runs)
    table["seeds"] = table.apply(seed_text, axis=1) if len(table) else None
    table["family"] = table["model"].map(family)
    table["pretrained"] = ~table["pretrained_tag"].fillna(NO_PRETRAINING).isin([NO_PRETRAINING, ""])
    table["pretrained_on"] = table["pretrained_tag"].map(pretrained_on)
    table["note"] = [pretraining_note(d, t) for d, t in zip(table["dataset"], table["pretrained_tag"], strict=True)]
    table["model_short"] = table["model"].map(short_model_name)
    table["whole_wall_s"] = [training_time_s(json.loads(metrics)) for metrics in table["metrics_json"]]
    for column, spec in DISPLAY_COLUMNS.items():
        table[column] = table[spec.key] / spec.scale
    table["date"] = pd.to_datetime(table["created"], utc=True, errors="coerce", format="ISO8601")
    table["hub_url"] = table["hub_repo"].map(lambda repo: f"https://huggingface.co/{repo}" if repo else None)
    table["files"] = table["run_path"].map(run_files_status)
    table["flagged"] = ~table["files"].isin([FILES_OK, HUB_ONLY])
    return table


def filter_runs(
    table: pd.DataFrame,
    datasets: Sequence[str] = (),
    families: Sequence[str] = (),
    strategies: Sequence[str] = (),
    pretrained: bool | None = None,
) -> pd.DataFrame:
    """Rows matching every given filter (an empty selection does not filter)."""
    keep = pd.Series(True, index=table.index)
    for column, chosen in (("dataset", datasets), ("family", families), ("strategy", strategies)):
        if chosen:
            keep &= table[column].isin(chosen)
    if pretrained is not None:
        keep &= table["pretrained"] == pretrained
    return table[keep]


def ranked(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Each dataset's runs together (scores of two tasks do not rank against each other), best `metric` first."""
    return table.sort_values(["dataset", metric], ascending=[True, False], na_position="last", kind="stable")


def mark_best(table: pd.DataFrame, metric: str = "top1") -> pd.DataFrame:
    """Add `best` = BEST_MARK on the row with the highest `metric` of each dataset among the rows given."""
    best = table.dropna(subset=[metric]).groupby("dataset")[metric].idxmax()
    return table.assign(best=np.where(table.index.isin(best.to_numpy()), BEST_MARK, ""))


def collapse_seed_groups(table: pd.DataFrame) -> pd.DataFrame:
    """One row per seed group (runs differing only in --seed): its best run's row, with top-1 = the group's mean,
    the run id marked, tier = the best tier among its runs and no own interval. Other runs stay as they are."""
    grouped = table["seed_group"].notna()
    if not grouped.any():
        return table
    best_first = table[grouped].sort_values("top1", ascending=False, kind="stable")
    heads = best_first.drop_duplicates("seed_group").index
    collapsed = table[~grouped | table.index.isin(heads)].copy()
    head = collapsed.index.isin(heads)
    rows = collapsed.loc[head]
    collapsed.loc[head, "tier"] = rows["seed_group"].map(best_first.groupby("seed_group")["tier"].min())
    collapsed.loc[head, "top1"] = rows["seed_mean"].astype(float)
    collapsed.loc[head, "top1_ci"] = None
    collapsed.loc[head, "run_id"] = rows["run_id"] + " (+" + (rows["seed_runs"] - 1).astype(str) + " seeds)"
    return collapsed


def pareto_front(table: pd.DataFrame, cost: str, metric: str) -> pd.DataFrame:
    """Runs no other run beats on both axes (lower `cost`, higher `metric`), cheapest first."""
    points = table.dropna(subset=[cost, metric]).sort_values([cost, metric], ascending=[True, False])
    running_best = points[metric].cummax().shift(fill_value=-np.inf)
    return points[points[metric] > running_best]


def best_per_model(table: pd.DataFrame, metric: str = "top1") -> pd.DataFrame:
    """The best run of each (dataset, model) pair, for grouped bars."""
    return table.loc[table.dropna(subset=[metric]).groupby(["dataset", "model"])[metric].idxmax()]


# --- one run's details -------------------------------------------------------------------------------------------


def run_metrics(row: pd.Series) -> dict[str, Any]:
    """The run's full metrics.json as recorded in the store (available even when the folder is gone), with its
    training time over every stage (`whole_wall_s`: a soup's own wall time is seconds, its ingredients' hours)."""
    metrics = json.loads(row["metrics_json"])
    return metrics | {"whole_wall_s": training_time_s(metrics)}


def training_time_s(metrics: dict[str, Any]) -> float | None:
    """The run's wall time with every run it builds on (`runfolder.whole_wall_s`); None if it recorded none."""
    return whole_wall_s(metrics) if "wall_s" in metrics else None


def class_labels(metrics: dict[str, Any]) -> list[str]:
    per_class = metrics.get("per_class") or []
    return [str(c["label"]) for c in per_class] or [str(i) for i in range(metrics.get("num_classes", 0))]


def confusion(metrics: dict[str, Any], normalised: bool = False) -> np.ndarray | None:
    """Rows = true class, columns = predicted; normalised per true class (the diagonal is then the recall)."""
    if not metrics.get("confusion_matrix"):
        return None
    counts = np.asarray(metrics["confusion_matrix"], dtype=float)
    if not normalised:
        return counts
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def most_confused(metrics: dict[str, Any], limit: int = 25) -> pd.DataFrame:
    """The off-diagonal cells of the confusion matrix with the most images (fastai's `most_confused`): true class,
    predicted class, count, and the count's share of the true class's images."""
    counts = confusion(metrics)
    columns = ["true", "predicted", "count", "share of true class"]
    if counts is None:
        return pd.DataFrame(columns=columns)
    labels = np.asarray(class_labels(metrics), dtype=object)
    off_diagonal = counts * (1 - np.eye(len(counts)))
    rows, cols = np.nonzero(off_diagonal)
    order = np.lexsort((rows, -off_diagonal[rows, cols]))[:limit]  # most images first, then class order
    rows, cols = rows[order], cols[order]
    totals = counts.sum(axis=1)
    return pd.DataFrame(
        {
            "true": labels[rows],
            "predicted": labels[cols],
            "count": off_diagonal[rows, cols].astype(int),
            "share of true class": off_diagonal[rows, cols] / totals[rows],
        },
        columns=columns,
    )


def per_class_frame(metrics: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(metrics.get("per_class") or [], columns=["label", "precision", "recall", "f1", "support"])


def read_predictions(run_path: str) -> pd.DataFrame:
    """predictions.parquet with `correct` and `confidence` filled in when an older writer left them out."""
    predictions = pd.read_parquet(Path(run_path) / PREDICTIONS)
    if "correct" not in predictions:
        predictions["correct"] = predictions["true_label"] == predictions["pred_label"]
    if "confidence" not in predictions:
        predictions["confidence"] = predictions["topk_probs"].map(lambda probs: float(probs[0]))
    return predictions


def reliability_bins(confidence: pd.Series, correct: pd.Series, bins: int = RELIABILITY_BINS) -> pd.DataFrame:
    """Equal-width confidence bins with their sample count, mean confidence and accuracy (empty bins dropped).

    Binned here rather than with sklearn's calibration_curve, which returns no counts: the bins are torchmetrics'
    (lower edge inclusive), so sum(count * |accuracy - confidence|) / n is the run's recorded ECE (a confidence of
    exactly 1.0, which torchmetrics counts in a bin of its own, joins the last bin here).
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, confidence.to_numpy(), side="right") - 1, 0, bins - 1)
    frame = pd.DataFrame({"bin": index, "confidence": confidence.to_numpy(), "correct": correct.to_numpy(float)})
    table = frame.groupby("bin").agg(count=("correct", "size"), confidence=("confidence", "mean"),
                                     accuracy=("correct", "mean")).reset_index()
    return table.assign(lower=edges[table["bin"]], upper=edges[table["bin"] + 1]).drop(columns="bin")


def reliability_curves(predictions: pd.DataFrame, metrics: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The reliability diagram's curves: the raw softmax, and for a calibrated run the same samples at its
    temperature (the calibrated top-1 probability the evaluator stored; temperature scaling keeps the labels)."""
    curves = {"uncalibrated": reliability_bins(predictions["confidence"], predictions["correct"])}
    if CALIBRATED_CONFIDENCE in predictions and TEMPERATURE in metrics:
        name = f"calibrated (T = {metrics[TEMPERATURE]:.2f})"
        curves[name] = reliability_bins(predictions[CALIBRATED_CONFIDENCE], predictions["correct"])
    return curves


def calibration_note(metrics: dict[str, Any]) -> str:
    """One or two sentences under the reliability diagram: the temperature, where it was fit, the ECE change."""
    if TEMPERATURE not in metrics:
        return f"ECE {metrics.get('ece', float('nan')):.3f}. No temperature: this run was written before " \
               "calibration was recorded, so its probabilities are the raw softmax (T = 1)."
    split, evaluated = metrics.get("calibration_split", "val"), metrics["eval_split"]
    note = (f"Temperature T = {metrics[TEMPERATURE]:.3f}, fit on the {split} split; ECE on the {evaluated} split "
            f"{metrics['ece']:.3f} before, {metrics['ece_calibrated']:.3f} after.")
    if split == evaluated:
        note += (" The temperature was fit on these same images, so the calibrated curve is in-sample and "
                 "optimistic: a test split would check it on images the fit never saw.")
    return note


def confident_mistakes(predictions: pd.DataFrame, limit: int, true_label: str | None = None) -> pd.DataFrame:
    """The wrong predictions the model was most sure of, optionally of one true class."""
    wrong = predictions[~predictions["correct"].astype(bool)]
    if true_label:
        wrong = wrong[wrong["true_label"] == true_label]
    wrong = wrong.sort_values("confidence", ascending=False).head(limit)
    top_k = [
        ", ".join(f"{label} {prob:.2f}" for label, prob in zip(labels, probs, strict=False))
        for labels, probs in zip(wrong["topk_labels"], wrong["topk_probs"], strict=True)
    ]
    return wrong[["sample_id", "true_label", "pred_label", "confidence"]].assign(top_k=top_k)


# --- where a run's images are: the gallery's data directory, remembered per dataset ------------------------------


def data_dirs_path(db: Path) -> Path:
    """The data directories set in the gallery, kept beside the store they were set for (leaderboard.db ->
    leaderboard.data-dirs.json): a path on this machine is a preference of whoever looks, not a fact of a run, so
    it stays out of the store (which is rebuilt from run folders and the Hub) and out of the shipped run folders."""
    return db.with_name(f"{db.stem}.data-dirs.json")


def saved_data_dirs(db: Path) -> dict[str, str]:
    """{dataset: data directory}; empty when none was set or the file is unreadable (the gallery then asks again)."""
    try:
        saved = json.loads(data_dirs_path(db).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in saved.items() if isinstance(v, str)} if isinstance(saved, dict) else {}


def save_data_dir(db: Path, dataset: str, folder: str) -> None:
    """Remember (or, for an empty `folder`, forget) the data directory of `dataset`; written atomically."""
    saved = saved_data_dirs(db)
    if folder:
        saved[dataset] = folder
    else:
        saved.pop(dataset, None)
    write_json(data_dirs_path(db), saved)


def image_root(folder: Path | None, sample_ids: Sequence[str]) -> Path | None:
    """Where `sample_ids` (relative to the run's data dir) are found: `folder` itself or one of its subfolders, so
    that pointing at the folder an archive was unpacked into works as well as at the dataset folder (as
    `--data-dir` accepts both). None when no image is found there."""
    if folder is None or not folder.is_dir() or not len(sample_ids):
        return None
    probe = next(iter(sample_ids))
    candidates = [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]
    return next((root for root in candidates if (root / probe).is_file()), None)


def image_file(sample_id: str, root: Path | None) -> Path | None:
    """The image of a prediction when it is reachable: the id relative to `root`, or the id itself where it is an
    absolute path (runs written before sample ids were relative to the data directory)."""
    path = Path(sample_id)
    if not path.is_absolute():
        path = root / path if root else None
    return path if path is not None and path.is_file() else None


# --- comparing two runs ------------------------------------------------------------------------------------------

DELTA_METRICS = [*SCORES, "loss", "ece", *COSTS, "train_images_per_s", "epochs", "wall_s", "whole_wall_s"]
TASK_FIGURES = {*SCORES, "loss", "ece"}  # what a run scores on its dataset: no change between two datasets
TIMED_FIGURES = {"latency_ms", "train_images_per_s", "wall_s", "whole_wall_s"}  # what the machine (and threads) set
LOWER_IS_BETTER = {key for key in DELTA_METRICS if METRIC_SPECS[key].higher_is_better is False}


def same_task(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Both runs scored on one dataset's task, so their scores can be subtracted."""
    return a.get("dataset") == b.get("dataset")


def same_hardware(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Both runs timed on one kind of machine with as many threads (metrics.json `hardware`), so times compare."""
    return a.get("hardware") == b.get("hardware")


def metric_deltas(a: dict[str, Any], b: dict[str, Any]) -> pd.DataFrame:
    """Each metric both runs have: A, B and B − A (NaN where it is no change: scores of two tasks, times of two
    machines)."""
    apart = (set() if same_task(a, b) else TASK_FIGURES) | (set() if same_hardware(a, b) else TIMED_FIGURES)
    rows = [
        {"metric": key, "A": float(a[key]), "B": float(b[key]),
         "delta (B − A)": math.nan if key in apart else float(b[key]) - float(a[key])}
        for key in DELTA_METRICS
        if isinstance(a.get(key), int | float) and isinstance(b.get(key), int | float)
    ]
    return pd.DataFrame(rows, columns=["metric", "A", "B", "delta (B − A)"])


def signed(render: Callable[[float], str], delta: float) -> str | None:
    """A change as `render` writes it (a MetricSpec's `number` or `text`), with its sign; None when there is none."""
    if math.isnan(delta):
        return None
    return ("+" if delta >= 0 else "") + render(delta)


def formatted_deltas(deltas: pd.DataFrame) -> pd.DataFrame:
    """`metric_deltas` as the page shows it: each metric's label, and values in its display format and unit."""
    specs = deltas["metric"].map(METRIC_SPECS)
    return pd.DataFrame({"metric": [spec.label for spec in specs],
                         "A": [spec.text(v) for spec, v in zip(specs, deltas["A"], strict=True)],
                         "B": [spec.text(v) for spec, v in zip(specs, deltas["B"], strict=True)],
                         "B − A": [signed(spec.text, d) or "—" for spec, d in zip(specs, deltas["delta (B − A)"],
                                                                                  strict=True)]})


def comparable(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Class-level comparison needs the same dataset and the same classes in the same order."""
    return same_task(a, b) and class_labels(a) == class_labels(b)


def class_disagreement(
    a: dict[str, Any], b: dict[str, Any], preds_a: pd.DataFrame | None = None, preds_b: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per class: recall and F1 of both runs and, with both (paired) prediction files, the samples they disagree on.

    Sorted by where the two runs differ most: sample disagreements when known, else the recall gap.
    """
    labels = class_labels(a)
    recall_a, recall_b = np.diag(confusion(a, True)), np.diag(confusion(b, True))
    f1_a, f1_b = per_class_frame(a)["f1"].to_numpy(), per_class_frame(b)["f1"].to_numpy()
    table = pd.DataFrame(
        {"class": labels, "recall A": recall_a, "recall B": recall_b, "Δ recall": recall_b - recall_a}
        | ({"Δ F1": f1_b - f1_a} if len(f1_a) == len(f1_b) == len(labels) else {})
    )
    order = table["Δ recall"].abs()
    if preds_a is not None and preds_b is not None:
        out_a, out_b = V.outcomes_frame(preds_a), V.outcomes_frame(preds_b)
        cells = V.paired_outcomes(out_a, out_b)
        samples = pd.DataFrame({
            "class": out_a.true_label.to_pylist(),
            "samples disagreeing": pc.not_equal(out_a.pred_label, out_b.pred_label).to_numpy(zero_copy_only=False),
            **{V.OUTCOMES[cell]: cells[cell] for cell in ("only_a", "only_b")},
        }).groupby("class").sum()
        table = table.join(samples, on="class")
        table[samples.columns] = table[samples.columns].fillna(0).astype(int)
        order = table["samples disagreeing"] + order  # counts first, recall gap (< 1) breaks ties
    return table.loc[order.sort_values(ascending=False, kind="stable").index].reset_index(drop=True)


def paired_comparison(preds_a: pd.DataFrame, preds_b: pd.DataFrame, name_a: str, name_b: str) -> V.Comparison:
    """The verdict on two runs' prediction frames (read_predictions): own intervals, and the paired test if paired."""
    return V.compare(V.outcomes_frame(preds_a), V.outcomes_frame(preds_b), name_a, name_b)


def outcome_samples(preds_a: pd.DataFrame, preds_b: pd.DataFrame, outcome: str) -> pd.DataFrame:
    """The samples of one cell of two paired runs' 2×2 table (outcome: a verdict.OUTCOMES key)."""
    a, b = V.outcomes_frame(preds_a), V.outcomes_frame(preds_b)
    chosen = pa.array(V.paired_outcomes(a, b)[outcome])
    return pd.DataFrame({
        "sample_id": a.sample_id.filter(chosen).to_pylist(),
        "true_label": a.true_label.filter(chosen).to_pylist(),
        "a_predicted": a.pred_label.filter(chosen).to_pylist(),
        "b_predicted": b.pred_label.filter(chosen).to_pylist(),
    })
