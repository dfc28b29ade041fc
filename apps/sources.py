"""Where the app's models come from: local run folders, the leaderboard store, and configured Hub repos.

Only the operator chooses models (flags, the store, `ARENA_HUB_MODELS` or `apps/hub_models.txt`): a public Space
must never download a repository that a visitor names.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from runfolder import CONFIG, HUB_PREFIX, METRICS, NO_PRETRAINING, find_runs, read_metrics
from runfolder.metrics import PERCENT

log = logging.getLogger(__name__)

REFERENCE_RUNS = Path(__file__).resolve().parents[1] / "reference"  # the shipped runs, wherever an app starts
HUB_MODELS_ENV = "ARENA_HUB_MODELS"
HUB_MODELS_FILE = Path(__file__).resolve().parent / "hub_models.txt"


@dataclass(frozen=True)
class ModelEntry:
    """One selectable model: `source` is what `Predictor.from_run` loads (a run folder or `hf-hub:<id>`)."""

    name: str
    source: str
    dataset: str
    backbone: str  # what its weights started from: metrics.json `pretrained_tag` (tf_efficientnet_lite0.in1k, none)
    top1: float | None
    eval_split: str  # the split `top1` was measured on (metrics.json `eval_split`)
    architecture: str = "?"  # the network (metrics.json `model`): short enough for a table cell

    @property
    def pretraining(self) -> str:
        """What the architecture's weights started from, in words (a tooltip)."""
        if self.backbone == NO_PRETRAINING:
            return "trained from scratch (no pretraining)"
        return f"pretrained: {self.backbone}"

    @property
    def top1_text(self) -> str:
        return PERCENT.number(self.top1) if self.top1 is not None else "n/a"

    @property
    def score(self) -> str:
        """`top1` with the split it was measured on, e.g. '88.6% (val)'."""
        return f"{self.top1_text} ({self.eval_split})"

    @property
    def title(self) -> str:
        return f"{self.name} · {self.architecture} · top-1 {self.score}"


@dataclass
class Catalog:
    """The models found, plus notes on sources that were configured but could not be used."""

    models: list[ModelEntry]
    notes: list[str]

    def datasets(self) -> list[str]:
        return sorted({m.dataset for m in self.models})

    def for_dataset(self, dataset: str | None) -> list[ModelEntry]:
        """The dataset's models, best top-1 first."""
        return sorted((m for m in self.models if m.dataset == dataset), key=lambda m: -(m.top1 or 0.0))

    def get(self, name: str) -> ModelEntry:
        for model in self.models:
            if model.name == name:
                return model
        raise KeyError(name)


def entry_from_metrics(name: str, source: str, metrics: dict) -> ModelEntry:
    top1 = metrics.get("top1")
    architecture = str(metrics.get("model") or "?")
    backbone = metrics.get("pretrained_tag") or architecture
    return ModelEntry(name, source, str(metrics.get("dataset", "unknown")), backbone,
                      float(top1) if top1 is not None else None, str(metrics.get("eval_split") or "unknown split"),
                      architecture)


def local_runs(roots: Iterable[Path], notes: list[str]) -> list[ModelEntry]:
    entries = []
    for run in (r for root in roots if Path(root).is_dir() for r in find_runs(Path(root))):
        try:
            entries.append(entry_from_metrics(run.name, str(run.resolve()), read_metrics(run)))
        except (OSError, ValueError) as err:
            notes.append(f"skipped run folder {run}: unreadable {METRICS} ({err})")
    return entries


def store_runs(db: Path | None, notes: list[str]) -> list[ModelEntry]:
    """Runs recorded in the leaderboard store whose run folder exists here, or that were pushed to the Hub."""
    if db is None or not Path(db).is_file():  # never create an empty store just by looking
        return []
    try:
        from leaderboard.store import Store

        rows = Store(db).runs().to_dict("records")
    except Exception as err:  # a store from another version must not keep the app from starting
        notes.append(f"leaderboard store {db} not read: {err}")
        return []
    entries = []
    for row in rows:
        metrics = json.loads(row["metrics_json"]) if row.get("metrics_json") else row
        if row.get("run_path") and (Path(row["run_path"]) / CONFIG).is_file():
            entries.append(entry_from_metrics(row["run_id"], str(Path(row["run_path"]).resolve()), metrics))
        elif row.get("hub_repo"):
            entries.append(entry_from_metrics(row["run_id"], f"{HUB_PREFIX}{row['hub_repo']}", metrics))
    return entries


def configured_hub_ids() -> list[str]:
    """Hub repo ids from `$ARENA_HUB_MODELS` (comma-separated), else `apps/hub_models.txt` (one per line, # notes)."""
    env = os.environ.get(HUB_MODELS_ENV)
    if env is not None:
        return [i.strip() for i in env.split(",") if i.strip()]
    if HUB_MODELS_FILE.is_file():
        lines = (line.split("#", 1)[0].strip() for line in HUB_MODELS_FILE.read_text().splitlines())
        return [line for line in lines if line]
    return []


def hub_runs(repo_ids: Iterable[str], notes: list[str]) -> list[ModelEntry]:
    """Configured Hub repos, described by their metrics.json (from the local HF cache when offline)."""
    from huggingface_hub import hf_hub_download

    entries = []
    for repo_id in repo_ids:
        try:
            metrics = json.loads(Path(hf_hub_download(repo_id, METRICS)).read_text())
        except Exception as err:  # offline, missing repo, no metrics.json: report it, keep starting
            notes.append(f"Hub model {repo_id} unavailable: {type(err).__name__}: {err}".splitlines()[0])
            continue
        entries.append(entry_from_metrics(repo_id, f"{HUB_PREFIX}{repo_id}", metrics))
    return entries


def discover(run_roots: Iterable[Path], db: Path | None, hub_ids: Iterable[str]) -> Catalog:
    """All models, each source once (a run both on disk and in the store is listed once), names unique."""
    notes: list[str] = []
    found = [*local_runs(run_roots, notes), *store_runs(db, notes), *hub_runs(hub_ids, notes)]
    models, seen_sources, names = [], set(), set()
    for entry in found:
        if entry.source in seen_sources:
            continue
        seen_sources.add(entry.source)
        name, n = entry.name, 1
        while name in names:
            n += 1
            name = f"{entry.name} ({n})"
        names.add(name)
        models.append(replace(entry, name=name))
    for note in notes:
        log.warning(note)
    return Catalog(models, notes)
