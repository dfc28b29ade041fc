"""How long the dashboard's leaderboard page takes to render with 1,000 runs in the store (budget: 3 s), tiers included.

    python benchmarks/bench_dashboard.py [--runs 1000] [--from-run runs/<id>] [--repeats 5] [--out CSV]

Fills a temporary store with N run folders copied from one real run (a tiny training when --from-run is not
given), each with its own metrics.json (varied backbone, dataset, strategy and numbers; per-class figures stay
the real run's) and predictions.parquet (a varied share of answers changed, so tiers differ), then times with
streamlit.testing.v1.AppTest:
  - store query: the bare `Store.runs()` the page starts from (baseline);
  - table build: derived columns, the file checks and the tiers (every run's predictions) of every run folder,
    uncached;
  - page, cold: the first render in a fresh process (imports, empty cache);
  - page, warm: a rerun with the cached table (what every click costs);
  - page, store changed: a rerun right after a run was recorded (the cache is invalidated, the table rebuilt).
The first warm rerun also rebuilds the table: SQLite checkpoints its WAL file into the database when the last
connection closes, which moves the store's file signature once more; the max column shows that rerun.
Prints a table and writes benchmarks/out/bench_dashboard.csv; exits 1 when a page render exceeds the budget.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

import runfolder as R
from leaderboard.store import Store

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[1]

APP = REPO / "apps" / "dashboard.py"
BUDGET_S = 3.0
# (model, pretrained tag, parameters, GMACs at 224 px): the backbones of docs/DESIGN.md, by the timm names that
# metrics.json records
BACKBONES = [
    ("vgg16", "vgg16.tv_in1k", 138_357_544, 15.5),
    ("resnet50", "resnet50.a1_in1k", 25_557_032, 4.1),
    ("resnet101", "resnet101.a1h_in1k", 44_549_160, 7.8),
    ("resnet152", "resnet152.a1h_in1k", 60_192_808, 11.6),
    ("inception_v3", "inception_v3.tv_in1k", 23_834_568, 5.7),
    ("tf_efficientnet_lite0", "tf_efficientnet_lite0.in1k", 4_652_008, 0.4),
]
DATASETS = ["cifar10", "tiny-imagenet", "fer2013", "chest-xray", "folder"]
STRATEGIES = ["linear-probe", "full", "gradual"]


def synthetic_metrics(real: dict, index: int, rng: np.random.Generator) -> dict:
    model, tag, params, gmacs = BACKBONES[index % len(BACKBONES)]
    pretrained = rng.random() < 2 / 3
    top1 = float(rng.uniform(0.3, 0.95))
    return real | {
        "dataset": DATASETS[index % len(DATASETS)],
        "model": model,
        "pretrained_tag": tag if pretrained else "none",
        "strategy": STRATEGIES[rng.integers(len(STRATEGIES))],
        "top1": top1,
        "top5": min(1.0, top1 + float(rng.uniform(0, 0.2))),
        "macro_f1": top1 - float(rng.uniform(0, 0.05)),
        "params": params,
        "macs": int(gmacs * 1e9),
        "latency_ms": float(rng.uniform(2, 200)),
        "train_images_per_s": float(rng.uniform(20, 2000)),
        "epochs": int(rng.integers(1, 50)),
        "created": f"2026-{1 + index % 12:02d}-{1 + index % 28:02d}T12:00:00+00:00",
    }


def fill_runs(real_run: Path, root: Path, count: int) -> Path:
    """`count` run folders under root/runs: the real run's files (weights hard-linked), varied metrics.json, and
    predictions with a varied share of the real run's answers changed (so that tiering has real work to do)."""
    real = R.read_metrics(real_run)
    predictions = pd.read_parquet(real_run / R.PREDICTIONS)
    classes = np.array(sorted(predictions["true_label"].unique()))
    rng = np.random.default_rng(0)
    runs = root / "runs"
    for index in range(count):
        run = runs / f"run-{index:04d}"
        shutil.copytree(real_run, run, ignore=shutil.ignore_patterns(R.CHECKPOINT, R.WEIGHTS, "*.png"))
        try:
            os.link(real_run / R.WEIGHTS, run / R.WEIGHTS)
        except OSError:  # another file system: a copy then
            shutil.copy(real_run / R.WEIGHTS, run / R.WEIGHTS)
        R.write_json(run / R.METRICS, synthetic_metrics(real, index, rng))
        changed = rng.random(len(predictions)) < rng.uniform(0, 0.3)
        varied = predictions.assign(pred_label=np.where(changed, rng.choice(classes, len(predictions)),
                                                        predictions["pred_label"]))  # fmt: skip
        R.write_predictions(run, varied.assign(correct=varied["pred_label"] == varied["true_label"]))
    return runs


def timed(action: Callable[[], object], repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - start)
    return seconds


def render(at: AppTest) -> None:
    at.run()
    if at.exception:
        raise RuntimeError(f"the dashboard raised: {at.exception}")


def measure(db: Path, runs: Path, repeats: int) -> list[tuple[str, list[float], float | None]]:
    from streamlit.testing.v1 import AppTest

    os.environ["ARENA_DB"] = str(db)
    store = Store(db)
    results: list[tuple[str, list[float], float | None]] = [("store query", timed(store.runs, repeats), None)]
    at = AppTest.from_file(str(APP), default_timeout=60)
    results.append(("page, cold (first render)", timed(lambda: render(at), 1), BUDGET_S))
    if len(at.dataframe[0].value) != len(store.runs()):
        raise RuntimeError("the leaderboard page does not show every run")
    results.append(("page, warm (cached)", timed(lambda: render(at), repeats), BUDGET_S))
    extra = iter(sorted(runs.iterdir())[:repeats])

    def changed() -> None:
        store.record_run(next(extra))  # re-records a run: the store file changes, the cache key with it
        render(at)

    results.append(("page, store changed", timed(changed, repeats), BUDGET_S))
    from apps.dashboard_data import _file_problem, leaderboard_table  # imported by the page already

    def build() -> None:
        clear_caches()
        _file_problem.cache_clear()  # really uncached: every file of every run read again
        leaderboard_table(store.runs())

    results.insert(1, ("table build (uncached)", timed(build, repeats), None))
    return results


def clear_caches() -> None:
    """Forget every memoised run-folder read of the tiers and seed groups (a cold process)."""
    import verdict
    from leaderboard import standings

    verdict._cached_eval_set.cache_clear()
    standings._train_config.cache_clear()


def report(results: list[tuple[str, list[float], float | None]], count: int, out: Path) -> bool:
    rows = [
        {
            "measurement": name,
            "runs": count,
            "repeats": len(seconds),
            "median_s": round(statistics.median(seconds), 3),
            "max_s": round(max(seconds), 3),
            "budget_s": budget,
            "within_budget": None if budget is None else max(seconds) <= budget,
        }
        for name, seconds, budget in results
    ]
    frame = pd.DataFrame(rows)
    frame["x_store_query"] = (frame["median_s"] / frame["median_s"].iloc[0]).round(1)  # against the baseline
    frame["cpu"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    print(frame.drop(columns="cpu").to_string(index=False))
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    print(f"written: {out}")
    return frame["within_budget"].dropna().all()


def tiny_real_run(root: Path) -> Path:
    """A real run folder in seconds: Lite0 fine-tuned for one epoch on 40 images of the in-repo CIFAR-10 sample."""
    from trainers.finetune import main as finetune

    return finetune(["--dataset", "cifar10", "--data-dir", str(REPO / "data" / "sample" / "cifar10"), "--output",
                     str(root / "seed-run"), "--name", "seed", "--img-size", "64", "--epochs", "1", "--workers", "0",
                     "--no-record", "--max-train-samples", "40", "--max-eval-samples", "20"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--from-run", type=Path, help="a real run folder to copy (default: train a tiny one)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "bench_dashboard.csv")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        root = Path(tmp)
        real_run = args.from_run or tiny_real_run(root)
        runs = fill_runs(real_run, root, args.runs)
        db = root / "arena.db"
        start = time.perf_counter()
        ingest = Store(db).ingest([runs])
        print(f"ingested {len(ingest.recorded)} runs in {time.perf_counter() - start:.1f} s ({ingest})")
        ok = report(measure(db, runs, args.repeats), len(ingest.recorded), args.out)
    print(f"leaderboard page with {args.runs} runs: {'within' if ok else 'OVER'} the {BUDGET_S:.0f} s budget")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
