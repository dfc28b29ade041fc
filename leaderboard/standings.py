"""The verdict columns of the leaderboard: each run's top-1 interval, its tier and its seed group.

Used by `python -m leaderboard show/export`, the dashboard's table and its CSV. Tiers and seed groups read the
run folders (predictions.parquet, train_config.yaml) where they are reachable; a run without them gets no tier
or group (empty), never a guessed one. Reads are memoised on each file's (mtime, size).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd
import yaml

import verdict as V
from runfolder import TRAIN_CONFIG, atomic_path, read_train_config
from runfolder.metrics import PERCENT

EXPORT_WRITERS = {  # `leaderboard export --csv FILE | --parquet FILE`
    "csv": lambda frame, path: frame.to_csv(path, index=False),
    "parquet": lambda frame, path: frame.to_parquet(path),
}
VERDICT_COLUMNS = ["tier", "top1_ci", "top1_low", "top1_high", "seed_group", "seed_runs", "seed_mean", "seed_std"]


def top1_text(top1: float, accuracy: V.Accuracy | None) -> str | None:
    """"88.6% ± 0.9" (the 95% Wilson interval's half-width, in points); None without a sample count."""
    if accuracy is None or pd.isna(top1):
        return None
    return f"{PERCENT.number(top1)} ± {accuracy.half_width * 100:.1f}"


@lru_cache(maxsize=1 << 14)
def _train_config(path: str, signature: tuple[int, int]) -> dict | None:
    try:
        loaded = read_train_config(Path(path).parent)
    except (OSError, yaml.YAMLError):
        return None
    return loaded if isinstance(loaded, dict) else None


def _train_config_of(run_path: str | None) -> dict | None:
    if not run_path:
        return None
    path = Path(run_path) / TRAIN_CONFIG
    try:
        stat = path.stat()
    except OSError:
        return None
    return _train_config(str(path), (stat.st_mtime_ns, stat.st_size))


def _intervals(runs: pd.DataFrame) -> pd.DataFrame:
    accuracies = [
        V.accuracy_from_metrics({"top1": top1, "num_samples": None if pd.isna(n) else int(n)})
        for top1, n in zip(runs["top1"], runs["num_samples"], strict=True)
    ]
    intervals = [a.interval if a else None for a in accuracies]
    return pd.DataFrame(
        {
            "top1_ci": [top1_text(t, a) for t, a in zip(runs["top1"], accuracies, strict=True)],
            "top1_low": [i.low if i else None for i in intervals],
            "top1_high": [i.high if i else None for i in intervals],
        },
        index=runs.index,
    ).astype({"top1_low": "Float64", "top1_high": "Float64"})


def _seed_groups(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs whose training differs only in the seed: the group's key, size, mean and std of top-1. A group needs
    two seeds at least: copies of one run (same seed) are not repeats."""
    configs = [_train_config_of(p) for p in runs["run_path"]]
    keys = pd.Series([V.seed_group_key(c) for c in configs], index=runs.index, dtype=object)
    keys = keys.where(keys.isna(), runs["dataset"] + ":" + keys.astype(str))
    seeds = pd.Series([(c or {}).get("seed") for c in configs], index=runs.index, dtype=object)
    keys = keys.where(keys.map(seeds.groupby(keys).nunique()) >= 2)
    grouped = runs["top1"].groupby(keys)
    return pd.DataFrame(
        {
            "seed_group": keys,
            "seed_runs": keys.map(grouped.size()).astype("Int64"),
            "seed_mean": keys.map(grouped.mean()).astype("Float64"),
            "seed_std": keys.map(grouped.std(ddof=1)).astype("Float64"),
        },
        index=runs.index,
    )


def with_verdict(runs: pd.DataFrame) -> pd.DataFrame:
    """Store rows (Store.runs()) plus VERDICT_COLUMNS."""
    evaluated = {
        row.run_id: (row.dataset, V.run_eval_set(row.run_path)) for row in runs[["run_id", "dataset", "run_path"]]
        .itertuples(index=False)
    }  # fmt: skip
    tiers = V.tiers(evaluated)
    tier = pd.Series([tiers[r] for r in runs["run_id"]], index=runs.index, dtype="Int64")
    return pd.concat([runs.drop(columns=VERDICT_COLUMNS, errors="ignore"), tier.rename("tier"), _intervals(runs),
                      _seed_groups(runs)], axis=1)[[*runs.columns.drop(VERDICT_COLUMNS, errors="ignore"),
                                                     *VERDICT_COLUMNS]]  # fmt: skip


def seed_text(row: pd.Series) -> str | None:
    """"88.1% ± 0.4 (3 seeds)" for a run in a seed group."""
    if pd.isna(row.get("seed_group")):
        return None
    return str(V.SeedSummary(int(row["seed_runs"]), float(row["seed_mean"]), float(row["seed_std"])))


def export(runs: pd.DataFrame, path: Path, fmt: str | None = None) -> Path:
    """Write store rows (Store.runs()) with their verdict columns (tier, top-1 interval, seed group) to `path`
    atomically as `fmt` (an EXPORT_WRITERS key; default: from the file suffix)."""
    path = Path(path)
    fmt = fmt or path.suffix.removeprefix(".")
    if fmt not in EXPORT_WRITERS:
        raise ValueError(f"cannot export to {path}: use a {' or '.join('.' + f for f in EXPORT_WRITERS)} file "
                         "(or say which format)")
    if path.suffix.removeprefix(".") in EXPORT_WRITERS and path.suffix != f".{fmt}":  # a .parquet file of CSV
        raise ValueError(f"cannot export {fmt} to {path}: its suffix says {path.suffix}; name a .{fmt} file")
    with atomic_path(path) as tmp:
        EXPORT_WRITERS[fmt](with_verdict(runs), tmp)
    return path
