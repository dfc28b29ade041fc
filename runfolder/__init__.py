"""The run folder (docs/DESIGN.md), the one contract between trainers, leaderboard and apps.

A run folder is a timm Hub repository plus evaluation artefacts. This package is the bottom layer: it owns the
file names, the atomic writer, the validating readers and the rule for what counts as a run, and imports nothing
of the product. torch and timm are imported only by the writers, so readers (the dashboard) stay light.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

if TYPE_CHECKING:
    from torch import nn

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CARD = "README.md"
METRICS = "metrics.json"
HISTORY = "history.csv"
TRAIN_CONFIG = "train_config.yaml"
PREDICTIONS = "predictions.parquet"
ONNX_FILE = "model.onnx"  # optional: written by `python -m trainers.export`
CONFUSION_PNG = "confusion_matrix.png"  # the card's figure (model_cards.card)
LR_FIND_PLOT, LR_FIND_TABLE = "lr_find.png", "lr_find.csv"  # --lr-find's range test (trainers.lr_find)
RUNS_DIR = "runs"  # where the trainers write run folders unless told otherwise (--output), and the apps look first
CHECKPOINT = "checkpoint"
CHECKPOINT_FILE = "state.pt"
METRICS_SCHEMA = 1
SUPPORTED_SCHEMAS = {METRICS_SCHEMA}  # metrics.json `schema` values this code reads (absent = 1)
LABEL_IDS = "label_ids"  # config.json: the dataset's own class ids, parallel to timm's label_names
REQUIRED_METRICS = {"dataset": str, "eval_split": str, "num_classes": int, "model": str, "top1": float}
HUB_PREFIX, LOCAL_PREFIX = "hf-hub:", "local-dir:"  # timm's model-name prefixes for a Hub repo and a local folder
# Temperature scaling: the softmax temperature fit on the validation logits, a top-level key of config.json (timm's
# `local-dir:`/`hf-hub:` loaders read only their own keys there) and of metrics.json. Absent: T = 1, uncalibrated.
TEMPERATURE = "temperature"
CALIBRATED_CONFIDENCE = "calibrated_confidence"  # predictions.parquet: top-1 probability at the run's temperature
# predictions.parquet: one row per evaluated sample, these columns in this order (write_predictions holds to them)
PREDICTION_COLUMNS = ("sample_id", "true_label", "pred_label", "correct", "confidence", "topk_labels", "topk_probs",
                      CALIBRATED_CONFIDENCE)
LINEAGE = "lineage"  # metrics.json: {run name: its own wall_s} of every run this one builds on
# metrics.json `pretrained_tag`: timm's `arch.tag`, an `hf-hub:` id, or one of these two
NO_PRETRAINING = "none"  # trained from random initialisation
FILE_TAG_PREFIX = "file:"  # started from weight files, named after the prefix (a soup: joined by its separator)
# metrics.json of a linear probe: what computing the frozen backbone's features took, and whether this run read
# them from a cache an earlier run wrote (then that time was spent before this run's `wall_s`)
FEATURE_CACHE_S, FEATURE_CACHE_READ = "feature_cache_s", "feature_cache_read"
VAL_TOP1 = "val_top1"  # metrics.json: the kept weights' validation top-1 (`top1` is the evaluation split's)
# history.csv keeps each epoch's confusion matrix up to this many classes: a 200-class one is 40,000 counts an epoch
# (3.6 MB of CSV over 30 epochs); metrics.json keeps the final matrix at any size.
HISTORY_MATRIX_MAX_CLASSES = 20
RELIABILITY_BINS = 15  # equal-width confidence bins of metrics.json's ECE and of the reliability diagram


class MetricsError(ValueError):
    """A metrics.json that is not valid JSON or not in the run-folder schema."""


def _umask() -> int:
    """The process's umask. Linux states it in /proc; elsewhere it is read by setting and restoring it, which
    for a moment leaves other threads (the apps') creating files with umask 0."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            return next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        current = os.umask(0)
        os.umask(current)
        return current


def _move_into_place(tmp: Path, path: Path) -> None:
    """Atomically replace `path` by `tmp`, with the mode open() would give under the user's umask: temp files
    (mkstemp, and safetensors' writer behind timm's save_for_hf) are created 0600, unreadable to a web server."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        _move_into_place(Path(tmp), path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: dict) -> None:
    write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_model(
    run_dir: Path,
    model: nn.Module,
    labels: list[str],
    descriptions: dict[str, str] | None,
    data_config: dict,
    temperature: float | None = None,
    label_ids: list[str] | None = None,
) -> None:
    """config.json + model.safetensors through timm's own Hub exporter, so `local-dir:`/`hf-hub:` load it.

    timm's keys: `label_names` (the names shown to users), `label_descriptions` (name -> longer text). `label_ids`,
    where the dataset has its own class ids (Tiny ImageNet's WordNet ids), is ours: timm keeps it in config.json.
    """
    from timm.models import save_for_hf

    model_config: dict[str, Any] = {"label_names": labels}
    if descriptions:
        model_config["label_descriptions"] = descriptions
    if temperature is not None:  # save_for_hf writes the keys it does not know at the top level
        model_config[TEMPERATURE] = check_temperature(temperature)
    if label_ids:
        model_config[LABEL_IDS] = label_ids
    with tempfile.TemporaryDirectory(dir=run_dir, prefix=".export.") as tmp:
        export_kwargs = _export_kwargs(model, data_config)
        save_for_hf(model, tmp, model_config=model_config, safe_serialization=True, **export_kwargs)
        for name in (CONFIG, WEIGHTS):
            _move_into_place(Path(tmp) / name, run_dir / name)


def _export_kwargs(model: nn.Module, data_config: dict, takes_data_config: bool | None = None) -> dict:
    """save_for_hf's keyword for the preprocessing the run used. timm 1.0.31 takes `data_config` and then drops the
    source checkpoint's `test_*` recommendations; timm 1.0.29 (still on some GPU images) has no such keyword and
    writes the model's pretrained_cfg, so there the same keys go into pretrained_cfg: one config.json either way."""
    if takes_data_config is None:
        from timm.models import save_for_hf

        takes_data_config = "data_config" in inspect.signature(save_for_hf).parameters
    if takes_data_config:
        return {"data_config": data_config}
    # as timm 1.0.31 does: the source checkpoint's test-time size, and its pooled size at another size, no longer hold
    source = {k: v for k, v in model.pretrained_cfg.items() if not k.startswith("test_")}
    if tuple(data_config["input_size"]) != tuple(source.get("input_size", ())):
        source["pool_size"] = None
    model.pretrained_cfg = source | dict(data_config)
    return {}


@dataclass(frozen=True)
class EpochRow:
    """One row of history.csv: an epoch's training and validation figures (epoch 0: the starting weights of an
    `--epochs 0` run). Its field names are the file's columns, which the dashboard's curves read."""

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float  # validation top-1
    val_top5: float | None  # 5 classes or more
    val_macro_f1: float
    lr: float  # the largest of the optimizer's parameter groups
    seconds: float  # this epoch's training
    train_images_per_s: float
    wall_s: float  # since the run started, data loading included, when this epoch's validation ended
    val_per_class_recall: list[float]
    val_confusion_matrix: list[list[int]] | None  # up to HISTORY_MATRIX_MAX_CLASSES classes


def write_history(run_dir: Path, rows: list[dict]) -> None:
    """`rows`: EpochRow fields (as dicts: checkpoints keep them so), one per epoch."""
    with atomic_path(run_dir / HISTORY) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)


def write_predictions(run_dir: Path, frame: pd.DataFrame) -> None:
    if tuple(frame.columns) != PREDICTION_COLUMNS:
        raise ValueError(f"{PREDICTIONS} takes the columns {list(PREDICTION_COLUMNS)}, not {list(frame.columns)}")
    with atomic_path(run_dir / PREDICTIONS) as tmp:
        frame.to_parquet(tmp, index=False)


def write_train_config(run_dir: Path, config: dict) -> None:
    write_text(run_dir / TRAIN_CONFIG, yaml.safe_dump(config, sort_keys=False))


def save_checkpoint(run_dir: Path, state: dict) -> None:
    import torch

    with atomic_path(run_dir / CHECKPOINT / CHECKPOINT_FILE) as tmp:
        torch.save(state, tmp)


def load_checkpoint(run_dir: Path) -> dict:
    path = run_dir / CHECKPOINT / CHECKPOINT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"--resume {run_dir}: no checkpoint at {path}")
    import torch

    # weights_only=False: the state holds optimizer/scheduler dicts and RNG states; we wrote it ourselves.
    return torch.load(path, map_location="cpu", weights_only=False)


def validate_metrics(metrics: Any) -> dict[str, Any]:
    """Check the metrics.json keys every reader relies on (docs/DESIGN.md); raise MetricsError naming what is wrong."""
    if not isinstance(metrics, dict):
        raise MetricsError(f"unknown schema: expected a JSON object, got {type(metrics).__name__}")
    if metrics.get("schema", METRICS_SCHEMA) not in SUPPORTED_SCHEMAS:
        raise MetricsError(f"unknown schema {metrics['schema']!r}: this code reads {sorted(SUPPORTED_SCHEMAS)}")
    for key, kind in REQUIRED_METRICS.items():
        value = metrics.get(key)
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if not (numeric if kind is float else isinstance(value, kind)):
            raise MetricsError(f"unknown schema: key {key!r} is missing or not a {kind.__name__} ({value!r})")
    return metrics


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """metrics.json, validated; MetricsError for corrupt JSON or an unknown schema."""
    try:
        return validate_metrics(json.loads((Path(run_dir) / METRICS).read_text(encoding="utf-8")))
    except json.JSONDecodeError as error:
        raise MetricsError(f"corrupt JSON: {error}") from error


def lineage(runs: Iterable[Path]) -> dict[str, float]:
    """What a run records as `lineage`: every run its weights or targets came from (`runs`: its first stage, a
    soup's ingredients, its teachers) and every run in their own lineages, each once by name with its own `wall_s`.
    A run shared by several of them (the first stage of a soup's ingredients) counts once. A run written before
    lineages were recorded stands for its earlier runs by what it recorded of them, under `<name> (earlier runs)`."""
    found: dict[str, float] = {}
    for run in map(Path, runs):
        metrics = read_metrics(run)
        earlier = _earlier_runs_s(metrics)
        found |= metrics.get(LINEAGE) or ({f"{run.name} (earlier runs)": earlier} if earlier else {})
        found[run.name] = metrics["wall_s"]
    return found


def _earlier_runs_s(metrics: dict) -> float:
    """What a run written before lineages recorded of the runs it built on: its first stages and its teachers."""
    return metrics.get("first_stage_wall_s", 0) + metrics.get("teachers_wall_s", 0)


def whole_wall_s(metrics: dict) -> float:
    """The run's wall time with every run it builds on (`lineage`; for a run written before lineages were
    recorded, the first stages and teachers it recorded, one level deep) and features it read from a cache."""
    cached = metrics.get(FEATURE_CACHE_S, 0) if metrics.get(FEATURE_CACHE_READ) else 0
    if LINEAGE in metrics:
        return metrics["wall_s"] + sum(metrics[LINEAGE].values()) + cached
    return metrics["wall_s"] + _earlier_runs_s(metrics) + cached


def validation_top1(metrics: dict) -> float | None:
    """The kept weights' top-1 on validation: what choices between runs (a greedy soup) may use, where `top1` may be
    the test split's. Runs written before `VAL_TOP1` have it as `top1` when they were evaluated on validation."""
    if VAL_TOP1 in metrics:
        return metrics[VAL_TOP1]
    return metrics["top1"] if metrics["eval_split"] == "val" else None


def read_config(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / CONFIG).read_text(encoding="utf-8"))


def check_temperature(value: Any) -> float:
    """A softmax temperature must be a finite number > 0; ValueError naming the bad value otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{TEMPERATURE} must be a finite number > 0, got {value!r}")
    return float(value)


def config_temperature(config: dict) -> float:
    """The run's softmax temperature from its config.json; 1.0 (no calibration) for runs written without one."""
    return check_temperature(config[TEMPERATURE]) if TEMPERATURE in config else 1.0


def first_synonym(description: str) -> str:
    """WordNet glosses list synonyms by comma ("go-kart, go-cart, ..."): the first is the everyday name."""
    return description.split(",")[0].strip()


def display_labels(label_names: list[str], descriptions: dict[str, str] | None = None) -> list[str]:
    """What a person reads for each class: its name, or for a class whose name is an id with a description
    (an older Tiny ImageNet run: `label_names` are wnids, `label_descriptions` {wnid: words.txt line}) the
    description's first synonym. Names that would repeat keep their id in brackets, so every class stays
    distinguishable."""
    descriptions = descriptions or {}
    shown = [first_synonym(descriptions[name]) if descriptions.get(name) else name for name in label_names]
    repeated = {text for text, count in Counter(shown).items() if count > 1}
    return [f"{text} ({name})" if text in repeated and text != name else text
            for text, name in zip(shown, label_names, strict=True)]


def config_labels(config: dict) -> list[str]:
    """The display labels of a config.json (`read_config`) or a model's `pretrained_cfg`. A config with `LABEL_IDS`
    was written with the names people read (made distinct by `trainers.data`): its descriptions are not needed."""
    descriptions = None if config.get(LABEL_IDS) else config.get("label_descriptions")
    return display_labels(list(config.get("label_names") or []), descriptions)


def read_history(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(Path(run_dir) / HISTORY)


def read_train_config(run_dir: Path) -> dict:
    # the C loader where PyYAML has it: the leaderboard reads a thousand of these on a cold start
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load((Path(run_dir) / TRAIN_CONFIG).read_text(encoding="utf-8"), Loader=loader)


def data_dir(run_dir: Path) -> Path | None:
    """The data directory the run was trained on (train_config.yaml `data_dir`): predictions.parquet's file sample
    ids are relative to it (a shipped reference run names a placeholder for the user's copy). None when unknown."""
    try:
        root = read_train_config(run_dir).get("data_dir")
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    return Path(root) if isinstance(root, str) and root else None


def is_run(path: Path) -> bool:
    """The one rule for what counts as a run folder: it holds metrics.json and is not hidden or a checkpoint."""
    path = Path(path)
    return (path / METRICS).is_file() and not path.name.startswith(".") and CHECKPOINT not in path.parts


def find_runs(paths: Path | Iterable[Path]) -> list[Path]:
    """Run folders among `paths` (each path itself if it is one, else every run folder below it), in order."""
    found: list[Path] = []
    for path in [Path(paths)] if isinstance(paths, str | os.PathLike) else map(Path, paths):
        below = [path] if is_run(path) else sorted(p.parent for p in path.rglob(METRICS) if is_run(p.parent))
        found += below
    return found
