"""The dashboard's verdict (apps/dashboard.py) through AppTest on the real reference runs: tiers and intervals in
the leaderboard, seed groups, and the compare view's paired test with its 2×2 table opening the error gallery.

The paired run is the CIFAR-10 reference run with every 23rd prediction flipped (fixtures_runs.flipped_copy), on the
very same 5,000 samples, so the verdict, the interval and the 2×2 table have known answers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from fixtures_runs import edit_train_config, flipped_copy, wilson_text
from streamlit.testing.v1 import AppTest

import verdict as V
from apps import dashboard_data as data
from leaderboard.store import Store

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "apps" / "dashboard.py")
REFERENCE = REPO / "reference"
CIFAR = REFERENCE / "cifar10-efficientnet_lite0"
TIMEOUT = 60


def texts(elements) -> str:
    return "\n".join(str(element.value) for element in elements)


def leaderboard(at: AppTest) -> pd.DataFrame:
    return next(frame.value for frame in at.dataframe if "tier" in frame.value.columns)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    """The shipped reference runs, a flipped CIFAR-10 run on the same samples, and a seed group of three."""
    root = tmp_path_factory.mktemp("verdict-dashboard")
    runs = root / "runs"
    edit_train_config(flipped_copy(CIFAR, runs / "cifar10-flipped", every=23), lr=0.005)
    for seed in (1, 2, 3):
        run = flipped_copy(CIFAR, runs / f"cifar10-seed{seed}", every=40 + seed)
        edit_train_config(run, seed=seed, name=run.name, lr=0.01)
    db = root / "arena.db"
    assert not Store(db).ingest([REFERENCE, runs]).skipped
    return db


@pytest.fixture
def app(store_path: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("ARENA_DB", str(store_path))
    return AppTest.from_file(APP, default_timeout=TIMEOUT).run()


def compare(app: AppTest, run_a: str, run_b: str) -> AppTest:
    app.sidebar.radio(key="view").set_value("Compare two runs").run()
    app.selectbox(key="compare_a").set_value(run_a).run()
    app.selectbox(key="compare_b").set_value(run_b).run()
    assert not app.exception, app.exception
    return app


def test_leaderboard_shows_tiers_intervals_and_seed_groups(app, store_path):
    assert not app.exception
    shown = leaderboard(app).set_index("run_id")
    assert list(leaderboard(app).columns) == data.TABLE_COLUMNS
    assert shown.loc["fer2013-efficientnet_lite0", "tier"] == 1
    assert shown.loc["fer2013-efficientnet_lite0", "top1_ci"] == wilson_text(REFERENCE / "fer2013-efficientnet_lite0")
    assert shown.loc["cifar10-efficientnet_lite0", "tier"] == 1
    # on the same 5,000 images: the seeds lose about 1.3 points, the flipped run 2.8 (p < 1e-20)
    group_tier = shown.loc[[i for i in shown.index if i.endswith("(+2 seeds)")], "tier"].item()
    assert 1 < group_tier < shown.loc["cifar10-flipped", "tier"]
    # the seed group is one row: its mean top-1, marked run id, and the group's summary
    group = shown.loc[[i for i in shown.index if i.endswith("(+2 seeds)")]]
    assert len(group) == 1 and "(3 seeds)" in group["seeds"].item()
    stored = Store(store_path).runs()
    seeds = stored[stored["run_id"].str.startswith("cifar10-seed")]
    assert group["top1"].item() == pytest.approx(seeds["top1"].mean(), abs=5e-4)  # shown rounded to 0.1 point
    assert "Tier" in texts(app.caption)

    app.toggle(key="expand_seeds").set_value(True).run()
    expanded = leaderboard(app).set_index("run_id")
    assert {"cifar10-seed1", "cifar10-seed2", "cifar10-seed3"} <= set(expanded.index)
    own = seeds.set_index("run_id").loc["cifar10-seed2", "top1"]
    assert expanded.loc["cifar10-seed2", "top1"] == pytest.approx(own, abs=5e-4)
    assert expanded.loc["cifar10-seed2", "top1_ci"]


def test_compare_paired_runs_shows_the_verdict_and_the_two_by_two_table(app, store_path):
    compare(app, "cifar10-efficientnet_lite0", "cifar10-flipped")
    expected = V.compare_runs(CIFAR, store_path.parent / "runs" / "cifar10-flipped")
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["A: top-1"] == f"{expected.a.top1:.1%}"
    assert metrics["B − A"] == f"{-expected.difference * 100:+.1f} points"  # the page's one direction of change
    assert metrics["McNemar p"] == V.format_p(expected.p_value)
    assert f"Verdict: cifar10-efficientnet_lite0 is better, p = {V.format_p(expected.p_value)}" in texts(app.success)
    cells = {b.key: b.label for b in app.button if b.key and b.key.startswith("cell_")}
    assert cells == {f"cell_{k}": f"{label}: {getattr(expected.outcomes, k):,}" for k, label in V.OUTCOMES.items()}

    app.button(key="cell_only_a").click().run()  # opens the error gallery on that cell's samples
    assert not app.exception, app.exception
    assert app.sidebar.radio(key="view").value == "Error gallery"
    samples = next(f.value for f in app.dataframe if "a_predicted" in f.value.columns)
    assert len(samples) == expected.outcomes.only_a
    assert (samples["a_predicted"] == samples["true_label"]).all()
    assert (samples["b_predicted"] != samples["true_label"]).all()
    assert "images not found under" in texts(app.warning)  # the reference images do not ship
    app.button(key="gallery_back").click().run()
    assert "The most confident mistakes first" in texts(app.caption)


def test_compare_runs_on_different_samples_says_they_are_not_comparable(app):
    compare(app, "chest-xray-efficientnet_lite0", "chest-xray-3-efficientnet_lite0")
    warning = texts(app.warning)
    assert "Not comparable sample by sample" in warning and "268 samples and B on 402" in warning
    assert "McNemar p" not in {m.label for m in app.metric}
    assert not [b for b in app.button if b.key and b.key.startswith("cell_")]
    assert "samples disagreeing" not in "\n".join(",".join(f.value.columns) for f in app.dataframe)


def test_compare_same_classes_other_samples_never_counts_disagreements(store_path, tmp_path, monkeypatch):
    """Two CIFAR-10 runs whose samples differ: no '0 samples disagreeing', the class view without sample counts."""
    db = tmp_path / "arena.db"
    other = Path(shutil.copytree(CIFAR, tmp_path / "cifar10-other"))
    predictions = pd.read_parquet(other / V.PREDICTIONS)
    predictions["sample_id"] = "elsewhere/" + predictions["sample_id"]
    predictions.to_parquet(other / V.PREDICTIONS, index=False)
    Store(db).ingest([CIFAR, other])
    monkeypatch.setenv("ARENA_DB", str(db))
    app = compare(AppTest.from_file(APP, default_timeout=TIMEOUT).run(), "cifar10-efficientnet_lite0",
                  "cifar10-other")  # fmt: skip
    assert "different samples" in texts(app.warning)
    classes = next(f.value for f in app.dataframe if "Δ recall" in f.value.columns)
    assert "samples disagreeing" not in classes.columns
    assert json.loads((other / "metrics.json").read_text()) == json.loads((CIFAR / "metrics.json").read_text())


def test_a_soups_one_point_curve_says_what_it_is(app):
    """The CIFAR-10 reference run averages runs: its history is one evaluation at epoch 0, and the page says so."""
    app.sidebar.radio(key="view").set_value("Training curves").run()
    app.selectbox(key="curve_dataset").set_value("cifar10").run()
    app.multiselect(key="curve_runs_cifar10").set_value([CIFAR.name]).run()
    assert not app.exception
    soup = json.loads((CIFAR / "metrics.json").read_text())["soup_of"]
    assert f"{CIFAR.name} averages the weights of {len(soup)} runs" in texts(app.caption)
