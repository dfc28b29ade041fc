"""The run folder (DESIGN.md): atomic writers for every file, the resumable checkpoint, and a reader.

A run folder is a timm Hub repository plus evaluation artefacts; this module is the only place that
knows its file names. torch and timm are imported only by the writers, so readers (the dashboard) stay light.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

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
CHECKPOINT = "checkpoint"
CHECKPOINT_FILE = "state.pt"
METRICS_SCHEMA = 1


@contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside `path`; move it into place only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; run folders are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, data: dict) -> None:
    write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_model(
    run_dir: Path, model: nn.Module, labels: list[str], descriptions: dict[str, str] | None, data_config: dict
) -> None:
    """config.json + model.safetensors through timm's own Hub exporter, so `local-dir:`/`hf-hub:` load it."""
    from timm.models import save_for_hf

    model_config = {"label_names": labels}
    if descriptions:
        model_config["label_descriptions"] = descriptions
    with tempfile.TemporaryDirectory(dir=run_dir, prefix=".export.") as tmp:
        save_for_hf(model, tmp, model_config=model_config, safe_serialization=True, data_config=data_config)
        for name in (CONFIG, WEIGHTS):
            os.replace(Path(tmp) / name, run_dir / name)


def write_history(run_dir: Path, rows: list[dict]) -> None:
    with atomic_path(run_dir / HISTORY) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)


def write_predictions(run_dir: Path, frame: pd.DataFrame) -> None:
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


def read_metrics(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / METRICS).read_text())


def read_config(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / CONFIG).read_text())


def read_history(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(Path(run_dir) / HISTORY)


def read_train_config(run_dir: Path) -> dict:
    return yaml.safe_load((Path(run_dir) / TRAIN_CONFIG).read_text())


def find_runs(root: Path, accept: Callable[[Path], bool] | None = None) -> list[Path]:
    """Run folders (holding config.json and metrics.json) at or under `root`, sorted by name."""
    root = Path(root)
    candidates = [root] if (root / METRICS).exists() else [p.parent for p in root.rglob(METRICS)]
    runs = [p for p in candidates if (p / CONFIG).exists() and not p.name.startswith(".")]
    return sorted(r for r in runs if accept is None or accept(r))
