"""The verdict (verdict/ and `python -m leaderboard compare`): paired tests and intervals, checked against
independent computations with scipy on the shipped reference runs, plus hand-made cases with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from fixtures_runs import correct_and_total, edit_train_config, flipped_copy, right_answers, wilson_text
from scipy.stats import binomtest

import verdict as V
from leaderboard.__main__ import main
from leaderboard.standings import export, with_verdict
from leaderboard.store import Store

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "reference"
CIFAR = REFERENCE / "cifar10-efficientnet_lite0"
FER = REFERENCE / "fer2013-efficientnet_lite0"


def reference_pairs() -> list[tuple[Path, Path]]:
    """Pairs of shipped reference runs evaluated on the same samples."""
    runs = sorted(p.parent for p in REFERENCE.glob("*/predictions.parquet"))
    return [(a, b) for i, a in enumerate(runs) for b in runs[i + 1 :] if V.compare_runs(a, b).pairing.paired]


@pytest.fixture(scope="module")
def paired_runs() -> tuple[Path, Path]:
    """Two shipped runs of one task: every task's contestants are scored on the same samples."""
    return reference_pairs()[0]


def independent(run_a: Path, run_b: Path) -> dict:
    """The figures of a paired comparison computed here from the two parquet files, with pandas and scipy."""
    right_a = right_answers(run_a)
    right_b = right_answers(run_b).loc[right_a.index]
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    n = len(right_a)
    # the bootstrap as documented: resample the n pairs, with the documented seed and resample count
    rng = np.random.default_rng(V.BOOTSTRAP_SEED)
    counts = rng.multinomial(n, [only_a / n, only_b / n, 1 - (only_a + only_b) / n], size=V.BOOTSTRAP_RESAMPLES)
    low, high = np.quantile((counts[:, 0] - counts[:, 1]) / n, [0.025, 0.975])
    wilson = binomtest(int(right_a.sum()), n).proportion_ci(method="wilson")
    return {
        "p": binomtest(only_a, only_a + only_b, 0.5).pvalue,
        "interval": (low, high),
        "difference": right_a.mean() - right_b.mean(),
        "wilson_a": (wilson.low, wilson.high),
        "only_a": only_a,
        "only_b": only_b,
    }


def test_compare_reproduces_scipy_and_the_seeded_bootstrap(paired_runs, capsys, tmp_path):
    run_a, run_b = paired_runs
    expected = independent(run_a, run_b)
    assert expected["only_a"] > 0 and expected["only_b"] > 0  # a real comparison, not a degenerate one
    assert main(["compare", str(run_a), str(run_b), "--db", str(tmp_path / "x.db")]) == 0
    assert not (tmp_path / "x.db").exists()  # two run folders: no store is needed, and none is made
    out = capsys.readouterr().out
    assert f"p = {expected['p']:.2g}" in out
    low, high = expected["interval"]
    assert f"95% CI {low * 100:+.1f} to {high * 100:+.1f}" in out
    assert f"difference A − B: {expected['difference'] * 100:+.1f} points" in out
    assert f"[{expected['wilson_a'][0]:.1%}, {expected['wilson_a'][1]:.1%}]" in out
    assert f"only A right {expected['only_a']:,}, only B right {expected['only_b']:,}" in out
    verdict_line = next(line for line in out.splitlines() if line.startswith("verdict:"))
    if expected["p"] < 0.05:
        better = run_a.name if expected["difference"] > 0 else run_b.name
        assert verdict_line == f"verdict: {better} is better, p = {expected['p']:.2g}"
    else:
        assert verdict_line == f"verdict: statistically tied, p = {expected['p']:.2g}"


def test_compare_json_has_the_same_figures(paired_runs, capsys, tmp_path):
    run_a, run_b = paired_runs
    expected = independent(run_a, run_b)
    assert main(["compare", str(run_a), str(run_b), "--json", "--db", str(tmp_path / "x.db")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["paired"] is True
    assert result["mcnemar_p"] == pytest.approx(expected["p"], rel=1e-12)
    assert result["difference_interval_95"] == pytest.approx(list(expected["interval"]), abs=1e-12)
    assert result["a"]["interval_95"] == pytest.approx(list(expected["wilson_a"]), abs=1e-12)
    assert result["outcomes"]["only_a"] == expected["only_a"] and result["outcomes"]["only_b"] == expected["only_b"]
    assert sum(result["outcomes"].values()) == result["a"]["samples"]
    recalls = {c["label"]: c for c in result["per_class_recall"]}
    a = pd.read_parquet(run_a / V.PREDICTIONS)
    for label, rows in a.groupby("true_label"):
        assert recalls[label]["recall_a"] == pytest.approx((rows["pred_label"] == label).mean())
        assert recalls[label]["support"] == len(rows)


def test_compare_by_store_run_id(paired_runs, tmp_path, capsys):
    run_a, run_b = paired_runs
    db = tmp_path / "arena.db"
    Store(db).ingest([run_a, run_b])
    assert main(["compare", run_a.name, run_b.name, "--json", "--db", str(db)]) == 0
    assert json.loads(capsys.readouterr().out)["b"]["run"] == run_b.name
    assert main(["compare", run_a.name, "no-such-run", "--db", str(db)]) == 1
    assert "neither a run folder nor a run id" in capsys.readouterr().err


def test_unpaired_runs_get_own_intervals_and_a_reason(capsys, tmp_path):
    a, b = REFERENCE / "chest-xray-efficientnet_lite0", REFERENCE / "chest-xray-3-efficientnet_lite0"
    assert main(["compare", str(a), str(b), "--db", str(tmp_path / "x.db")]) == 0
    out = capsys.readouterr().out
    assert "No paired test: A was evaluated on 268 samples and B on 402" in out
    assert "McNemar" not in out and "difference" not in out and "verdict" not in out
    correct, _ = correct_and_total(a)  # A's own record, counted here without the product
    wilson = binomtest(correct, 268).proportion_ci(method="wilson")
    assert f"[{wilson.low:.1%}, {wilson.high:.1%}], {correct}/268" in out
    assert main(["compare", str(a), str(b), "--json", "--db", str(tmp_path / "x.db")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["paired"] is False and result["mcnemar_p"] is None and result["outcomes"] is None
    assert "268 samples" in result["not_paired_reason"]


def outcomes(ids: list[str], true: list[str], pred: list[str]) -> pd.DataFrame:
    return V.outcomes_frame(pd.DataFrame({"sample_id": ids, "true_label": true, "pred_label": pred}))


def test_same_ids_with_other_labels_are_not_paired():
    ids = [f"img{i}" for i in range(4)]
    a = outcomes(ids, ["cat", "dog", "cat", "dog"], ["cat"] * 4)
    b = outcomes(ids[::-1], ["dog", "cat", "dog", "dog"], ["cat"] * 4)  # img0 is a dog in B
    result = V.compare(a, b)
    assert not result.pairing.paired
    assert "1 samples carry different true labels" in result.pairing.reason and "img0" in result.pairing.reason
    c = outcomes(["x", "y", "z", "w"], ["cat"] * 4, ["cat"] * 4)
    assert "different samples" in V.compare(a, c).pairing.reason


def test_duplicate_sample_ids_are_refused():
    with pytest.raises(V.PredictionsError, match="appears twice"):
        outcomes(["a", "b", "a"], ["x"] * 3, ["x"] * 3)


def test_ten_discordant_pairs_all_one_way():
    """Known answer: 10 discordant pairs, all won by A: exact two-sided p = 2 × 0.5^10."""
    ids = [f"s{i:02d}" for i in range(30)]
    true = ["cat"] * 30
    a = outcomes(ids, true, ["cat"] * 30)
    b = outcomes(ids, true, ["dog"] * 10 + ["cat"] * 20)
    result = V.compare(a, b, "A", "B")
    assert result.outcomes == V.PairedOutcomes(both_right=20, only_a=10, only_b=0, both_wrong=0)
    assert result.p_value == pytest.approx(2 * 0.5**10, rel=1e-12)
    assert result.verdict == "A is better, p = 0.002"
    tied = V.compare(a, outcomes(ids, true, ["dog"] * 2 + ["cat"] * 28), "A", "B")
    assert tied.p_value == pytest.approx(0.5) and tied.verdict == "statistically tied, p = 0.5"


@pytest.mark.parametrize(("only_a", "only_b"), [(0, 0), (1, 0), (5, 5), (7, 19), (120, 87), (3, 400)])
def test_mcnemar_equals_scipy_binomtest(only_a, only_b):
    expected = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    assert V.mcnemar_p(only_a, only_b) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("correct", "total"), [(0, 10), (10, 10), (253, 268), (1, 3), (4429, 5000), (50, 99_999)])
def test_wilson_interval_equals_scipy(correct, total):
    expected = binomtest(correct, total).proportion_ci(confidence_level=0.95, method="wilson")
    interval = V.wilson_interval(correct, total)
    assert (interval.low, interval.high) == pytest.approx((expected.low, expected.high), abs=1e-12)


def test_holm_matches_its_definition():
    # p sorted: 0.005, 0.01, 0.03, 0.04 -> 4 × 0.005, 3 × 0.01, max(0.03, 2 × 0.03), max(0.06, 1 × 0.04)
    assert V.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert V.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_bootstrap_interval_covers_the_difference_and_shrinks_with_samples():
    small = V.paired_bootstrap_interval(30, 20, 1_000)
    large = V.paired_bootstrap_interval(3_000, 2_000, 100_000)
    assert small.low < 0.01 < small.high and large.low < 0.01 < large.high
    assert large.high - large.low < (small.high - small.low) / 5
    assert V.paired_bootstrap_interval(30, 20, 1_000) == small  # fixed seed


def test_tiers_of_runs_on_the_same_samples():
    rng = np.random.default_rng(0)
    n = 2_000
    draws = rng.random((4, n))  # independent errors: the first two differ on ~370 samples, about evenly
    correct = np.stack([draws[0] < 0.90, draws[1] < 0.895, draws[2] < 0.70, draws[3] < 0.5])
    assert V.tier_runs(correct).tolist() == [1, 1, 2, 3]
    assert V.tier_runs(correct[::-1]).tolist() == [3, 2, 1, 1]


def test_leaderboard_tiers_only_runs_with_predictions(paired_runs, tmp_path):
    run_a, run_b = paired_runs
    third = flipped_copy(run_a, tmp_path / "far", every=3)  # the same task, about a third of its answers flipped
    hub_only = flipped_copy(run_a, tmp_path / "no-predictions", every=5)
    (hub_only / V.PREDICTIONS).unlink()
    store = Store(tmp_path / "arena.db")
    store.ingest([run_a, run_b, third, hub_only, FER])
    table = with_verdict(store.runs()).set_index("run_id")
    assert table.loc["far", "tier"] > table.loc[run_a.name, "tier"] == 1
    assert pd.isna(table.loc["no-predictions", "tier"])
    assert table.loc["fer2013-efficientnet_lite0", "tier"] == 1
    assert table.loc["fer2013-efficientnet_lite0", "top1_ci"] == wilson_text(FER)
    wilson = binomtest(*correct_and_total(FER)).proportion_ci(method="wilson")
    assert table.loc["fer2013-efficientnet_lite0", "top1_low"] == pytest.approx(wilson.low)
    # the same verdict columns in the exports
    exported = pd.read_csv(export(store.runs(), tmp_path / "runs.csv")).set_index("run_id")
    assert exported.loc["far", "tier"] == table.loc["far", "tier"]
    assert pd.isna(exported.loc["no-predictions", "tier"])
    parquet = pd.read_parquet(export(store.runs(), tmp_path / "runs.parquet")).set_index("run_id")
    assert parquet.loc["fer2013-efficientnet_lite0", "top1_ci"] == wilson_text(FER)


def test_show_prints_tiers_and_intervals(paired_runs, tmp_path, capsys):
    db = tmp_path / "arena.db"
    Store(db).ingest([*paired_runs, FER])
    assert main(["show", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "tier" in out and wilson_text(FER) in out
    assert V.TIER_RULE.split(" (")[0] in " ".join(out.split())  # the rule, as rich wraps it


def test_seed_groups(tmp_path):
    """Runs differing only in seed (and name) form one group: mean ± std and count; others stay alone."""
    runs = []
    for seed, top1 in ((1, 0.80), (2, 0.84), (3, 0.82)):
        run = flipped_copy(CIFAR, tmp_path / f"cifar10-seed{seed}", every=7 + seed)
        edit_train_config(run, seed=seed, name=run.name)
        metrics = json.loads((run / "metrics.json").read_text())
        (run / "metrics.json").write_text(json.dumps(metrics | {"top1": top1}))
        runs.append(run)
    other = flipped_copy(CIFAR, tmp_path / "cifar10-lr", every=11)
    edit_train_config(other, lr=0.1234)
    copies = [flipped_copy(CIFAR, tmp_path / f"cifar10-copy{i}", every=9 + i) for i in (1, 2)]
    for copy in copies:  # the same configuration and the same seed: copies, not a seed group
        edit_train_config(copy, lr=0.2)
    store = Store(tmp_path / "arena.db")
    store.ingest([*runs, other, *copies])
    table = with_verdict(store.runs()).set_index("run_id")
    group = table.loc[[r.name for r in runs]]
    assert group["seed_group"].nunique() == 1 and (group["seed_runs"] == 3).all()
    assert group["seed_mean"].iloc[0] == pytest.approx(0.82)
    assert group["seed_std"].iloc[0] == pytest.approx(np.std([0.80, 0.84, 0.82], ddof=1))
    assert pd.isna(table.loc["cifar10-lr", "seed_group"])
    assert table.loc[["cifar10-copy1", "cifar10-copy2"], "seed_group"].isna().all()


def test_seeds_flag_trains_a_seed_group(tmp_path, capsys):
    """`--seeds 2`: two real tiny trainings that differ only in the seed, grouped on the leaderboard."""
    from tests.conftest import train_tiny

    first = train_tiny(tmp_path / "runs", "--seeds", "2", "--seed", "7", name="cifar10-group")
    assert first.name == "cifar10-group-seed7"
    assert "seed group of 2 runs: cifar10-group-seed7, cifar10-group-seed8" in capsys.readouterr().out
    runs = sorted((tmp_path / "runs").iterdir())
    assert [r.name for r in runs] == ["cifar10-group-seed7", "cifar10-group-seed8"]
    assert [yaml.safe_load((r / "train_config.yaml").read_text())["seed"] for r in runs] == [7, 8]
    store = Store(tmp_path / "arena.db")
    store.ingest(runs)
    table = with_verdict(store.runs())
    assert table["seed_group"].nunique() == 1 and table["seed_group"].notna().all()
    assert (table["seed_runs"] == 2).all()
    assert table["seed_mean"].iloc[0] == pytest.approx(table["top1"].mean())


def test_an_older_store_gains_the_sample_count_on_open(tmp_path):
    """Migration 2 fills num_samples from each stored metrics_json, so old rows get their top-1 interval."""
    import sqlite3

    from leaderboard.store import MIGRATIONS

    db = tmp_path / "old.db"
    Store(db).record_run(FER)
    with sqlite3.connect(db) as conn:  # back to schema version 1: no num_samples column
        conn.execute("ALTER TABLE runs DROP COLUMN num_samples")
        conn.execute("UPDATE schema_version SET version = 1")
    reopened = Store(db)
    assert reopened.schema_version() == len(MIGRATIONS) == 2
    assert reopened.runs()["num_samples"].tolist() == [3589]
    assert with_verdict(reopened.runs())["top1_ci"].tolist() == [wilson_text(FER)]


def test_model_card_gives_the_top1_interval(tmp_path):
    from model_cards.card import render_card

    card = str(render_card(CIFAR))
    wilson = binomtest(*correct_and_total(CIFAR)).proportion_ci(method="wilson")
    assert f"95% interval **{wilson.low:.1%}–{wilson.high:.1%}**" in card
    assert "5,000 evaluation images" in card
