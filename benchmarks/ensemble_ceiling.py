"""What averaging several runs' predicted probabilities scores on their shared validation images: about the most that
a weight soup (`python -m trainers.soup`) or a network distilled from those runs can hope to reach.

    python benchmarks/ensemble_ceiling.py RUN RUN ... [--sizes 2 3 4]

Rows: each run alone, the best of them first (the baseline of the "vs best run" column); the average of all of
them; and, for each size in --sizes, the best average of that many runs, found by scoring every subset on the same
images, so optimistic like any choice made on the images it is scored on. An ensemble of N runs costs N forward
passes; the product ships one network, so this is a bound, not a contestant.

Each run's predictions.parquet keeps its top-k labels and probabilities (k = min(5, classes)); a class outside a
run's top-k counts as probability 0, so the average is exact up to 5 classes and a close lower bound beyond.
The runs must have been evaluated on the same sample ids (the same carve: `--split-seed`).
Writes benchmarks/out/ensemble_ceiling.csv.
"""

from __future__ import annotations

import argparse
import itertools
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from common import report

import runfolder as R


def probabilities(run: Path, labels: list[str]) -> tuple[pd.Index, np.ndarray, np.ndarray]:
    """The run's sample ids (sorted), its probability for each of `labels`, and the true class indices."""
    frame = pd.read_parquet(run / R.PREDICTIONS).sort_values("sample_id")
    column = {label: i for i, label in enumerate(labels)}
    probs = np.zeros((len(frame), len(labels)))
    for row, (top, p) in enumerate(zip(frame["topk_labels"], frame["topk_probs"], strict=True)):
        probs[row, [column[label] for label in top]] = p
    return pd.Index(frame["sample_id"]), probs, frame["true_label"].map(column).to_numpy()


def read_runs(runs: list[Path]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    if shared := sorted(name for name, count in Counter(run.name for run in runs).items() if count > 1):
        raise SystemExit(f"error: two runs share a folder name; the table names each run by its folder: {shared}")
    labels = R.config_labels(R.read_config(runs[0]))
    read = {run: probabilities(run, labels) for run in runs}  # each file once
    ids, _, truth = read[runs[0]]
    for run, (run_ids, _, _) in read.items():
        if not run_ids.equals(ids):
            raise SystemExit(f"error: {run} was evaluated on other images than {runs[0]}: the runs must share their "
                             "validation split (train them with the same --split-seed)")
    return {run.name: probs for run, (_, probs, _) in read.items()}, truth


def ensemble_rows(by_run: dict[str, np.ndarray], truth: np.ndarray, sizes: list[int]) -> list[dict]:
    def top1(names: tuple[str, ...]) -> float:
        return float((np.mean([by_run[n] for n in names], axis=0).argmax(1) == truth).mean())

    alone = sorted(((top1((name,)), name) for name in by_run), reverse=True)
    best = alone[0][0]
    rows = [{"ensemble": name, "runs": 1, "top1": score} for score, name in alone]
    rows.append({"ensemble": "all", "runs": len(by_run), "top1": top1(tuple(by_run))})
    for size in (s for s in sizes if 1 < s < len(by_run)):
        score, names = max((top1(c), c) for c in itertools.combinations(by_run, size))
        rows.append({"ensemble": "best of size: " + " + ".join(names), "runs": size, "top1": score})
    return [{**row, "vs_best_run_points": (row["top1"] - best) * 100} for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders evaluated on the same samples")
    parser.add_argument("--sizes", nargs="*", type=int, default=[2, 3, 4], help="subset sizes to search")
    args = parser.parse_args()
    by_run, truth = read_runs(args.runs)
    report("ensemble_ceiling", ensemble_rows(by_run, truth, args.sizes),
           f"Averaged softmax of {len(by_run)} runs on the same {len(truth):,} images (validation top-1)")


if __name__ == "__main__":
    main()
