"""The verdict's cost: `leaderboard compare` at 10k and 100k samples, and the tiering of 1,000 runs.

    python benchmarks/bench_compare.py [--samples 10000 100000] [--runs 1000] [--from-run runs/<id>] [--repeats 5]

Compare: two synthetic predictions.parquet files (10 classes, about 90% and 89% right, the same sample ids),
compared as the CLI does (`verdict.compare_runs`: read, pair, McNemar, 10,000-resample bootstrap, per-class
recall). Baseline: reading the two files with pandas. Reference: the textbook paired bootstrap that resamples
sample indices (2,000 resamples, in chunks), to show what drawing the multinomial counts saves.

Tiers: a store of N run folders (benchmarks/bench_dashboard.py's `fill_runs`: one real run copied, each copy's
predictions varied), then `leaderboard.standings.with_verdict` over the store's rows, cold (every
predictions.parquet and train_config.yaml read) and warm (memoised on file signatures). Baseline: the store query.
The page render with these tiers is bench_dashboard.py's figure (budget 3 s).
Prints a table and writes benchmarks/out/bench_compare.csv; exits 1 when a budget is exceeded.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from common import hardware, load_average, report

import verdict as V
from leaderboard.standings import with_verdict
from leaderboard.store import Store

COMPARE_BUDGET_S = 1.0  # at 100k samples


def seconds(action: Callable[[], object], repeats: int) -> float:
    """Median wall time of `repeats` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def write_pair(root: Path, samples: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(samples)
    classes = np.array([f"class{i}" for i in range(10)])
    truth = rng.choice(classes, samples)
    ids = np.array([f"images/{i:07d}.jpg" for i in range(samples)])
    runs = []
    for name, accuracy in (("a", 0.90), ("b", 0.89)):
        run = root / f"{name}-{samples}"
        run.mkdir(parents=True)
        pred = np.where(rng.random(samples) < accuracy, truth, rng.choice(classes, samples))
        order = rng.permutation(samples)  # files need not list samples in the same order
        pd.DataFrame({"sample_id": ids[order], "true_label": truth[order], "pred_label": pred[order]}).to_parquet(
            run / V.PREDICTIONS, index=False)  # fmt: skip
        runs.append(run)
    return runs[0], runs[1]


def index_bootstrap(run_a: Path, run_b: Path, resamples: int = 2_000, chunk: int = 100) -> None:
    """The textbook paired bootstrap: resample sample indices, recompute the difference (reference only)."""
    difference = V.read_outcomes(run_a).correct.astype(float) - V.read_outcomes(run_b).correct.astype(float)
    rng = np.random.default_rng(0)
    draws = [difference[rng.integers(0, len(difference), (chunk, len(difference)))].mean(axis=1)
             for _ in range(resamples // chunk)]  # fmt: skip
    np.quantile(np.concatenate(draws), [0.025, 0.975])


def compare_rows(root: Path, sizes: list[int], repeats: int) -> list[dict]:
    rows = []
    for samples in sizes:
        run_a, run_b = write_pair(root, samples)
        baseline = seconds(lambda a=run_a, b=run_b: (pd.read_parquet(a / V.PREDICTIONS),
                                                     pd.read_parquet(b / V.PREDICTIONS)), repeats)  # fmt: skip
        measured = {
            "read both files (pandas, baseline)": (baseline, None),
            "compare_runs (the CLI's whole compare)": (
                seconds(lambda a=run_a, b=run_b: V.compare_runs(a, b), repeats),
                COMPARE_BUDGET_S if samples >= 100_000 else None,
            ),
            "index-resampling bootstrap, 2,000 (reference)": (
                seconds(lambda a=run_a, b=run_b: index_bootstrap(a, b), max(1, repeats // 2)), None),
        }
        for name, (median, budget) in measured.items():
            rows.append(row(name, f"{samples:,} samples", median, baseline, budget))
    return rows


def row(name: str, size: str, median: float, baseline: float, budget: float | None) -> dict:
    return {
        "measurement": name,
        "size": size,
        "median_s": median,
        "x_baseline": median / baseline,
        "budget_s": budget,
        "within_budget": None if budget is None else median <= budget,
    }


def tier_rows(root: Path, real_run: Path, count: int, repeats: int) -> list[dict]:
    from bench_dashboard import clear_caches, fill_runs

    runs = fill_runs(real_run, root, count)
    store = Store(root / "arena.db")
    store.ingest([runs])
    baseline = seconds(store.runs, repeats)

    def cold() -> pd.DataFrame:
        clear_caches()
        return with_verdict(store.runs())

    table = cold()
    size = f"{count:,} runs, {table['tier'].notna().sum():,} tiered, up to tier {table['tier'].max()}"
    return [
        row("store query (baseline)", size, baseline, baseline, None),
        row("with_verdict, cold (reads every run folder)", size, seconds(cold, repeats), baseline, None),
        row("with_verdict, warm (memoised reads)", size, seconds(lambda: with_verdict(store.runs()), repeats),
            baseline, None),  # fmt: skip
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--from-run", type=Path, help="a real run folder to copy (default: train a tiny one)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    import torch

    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        root = Path(tmp)
        rows = compare_rows(root / "compare", args.samples, args.repeats)
        if args.runs:
            from bench_dashboard import tiny_real_run

            real_run = args.from_run or tiny_real_run(root)
            rows += tier_rows(root / "tiers", real_run, args.runs, args.repeats)
    header = f"verdict cost on {hardware(torch.device('cpu'))}, load {load_average()}"
    report("bench_compare", rows, header)
    ok = all(r["within_budget"] is not False for r in rows)
    print(f"compare at {max(args.samples):,} samples: {'within' if ok else 'OVER'} the {COMPARE_BUDGET_S:.0f} s budget")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
