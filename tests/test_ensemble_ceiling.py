"""benchmarks/ensemble_ceiling.py: the averaged probabilities of runs that err on different images, from their
predictions.parquet files, and the refusal of runs evaluated on other images."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import ensemble_ceiling  # noqa: E402

import runfolder as R  # noqa: E402

LABELS = ["NORMAL", "PNEUMONIA"]
TRUTH = ["NORMAL", "PNEUMONIA", "PNEUMONIA"]
# P(NORMAL) per sample: each run is wrong on a different one of the three, so each alone scores 2/3 and the
# average of the three (0.7, 0.33, 0.4) gets all three right.
P_NORMAL = {"a": [0.9, 0.6, 0.2], "b": [0.4, 0.1, 0.3], "c": [0.8, 0.3, 0.7]}


def write_run(root: Path, name: str, p_normal: list[float], ids: list[str]) -> Path:
    run = root / name
    run.mkdir()
    (run / R.CONFIG).write_text(json.dumps({"label_names": LABELS}))
    pairs = [sorted(zip((p, 1 - p), LABELS, strict=True), reverse=True) for p in p_normal]
    pd.DataFrame({"sample_id": ids, "true_label": TRUTH,
                  "topk_labels": [[label for _, label in pair] for pair in pairs],
                  "topk_probs": [[p for p, _ in pair] for pair in pairs]}).to_parquet(run / R.PREDICTIONS)
    return run


def test_the_average_of_runs_that_err_apart_beats_each_of_them(tmp_path):
    ids = ["s0.png", "s1.png", "s2.png"]
    runs = [write_run(tmp_path, name, p, ids) for name, p in P_NORMAL.items()]
    by_run, truth = ensemble_ceiling.read_runs(runs)
    rows = ensemble_ceiling.ensemble_rows(by_run, truth, sizes=[2])
    assert [row["top1"] for row in rows if row["runs"] == 1] == pytest.approx([2 / 3] * 3)
    everything = next(row for row in rows if row["ensemble"] == "all")
    assert everything["top1"] == 1.0 and everything["vs_best_run_points"] == pytest.approx(100 / 3)
    pair = next(row for row in rows if row["runs"] == 2)  # a + b and a + c get all three right; b + c ties on s2
    assert pair["top1"] == 1.0 and pair["ensemble"].startswith("best of size: a + ")


def test_runs_evaluated_on_other_images_are_refused(tmp_path):
    a = write_run(tmp_path, "a", P_NORMAL["a"], ["s0.png", "s1.png", "s2.png"])
    b = write_run(tmp_path, "b", P_NORMAL["b"], ["s0.png", "s1.png", "other.png"])
    with pytest.raises(SystemExit, match="other images.*--split-seed"):
        ensemble_ceiling.read_runs([a, b])
