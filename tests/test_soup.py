"""Greedy model soups (trainers/soup.py) from real tiny runs on the in-repo sample."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import SAMPLE, train_tiny

import runfolder as R
from trainers.soup import SoupError, ingredients, main


def test_a_greedy_soup_keeps_what_scores_as_well_and_writes_one_run_folder(tmp_path, tiny_run):
    """A run and its copy average into the same network: the copy joins (its soup scores as well), the soup's run
    folder names both, and the candidates' staging folders are gone."""
    copy = Path(shutil.copytree(tiny_run, tmp_path / "copy", ignore=shutil.ignore_patterns("checkpoint")))
    soup = main([str(tiny_run), str(copy), "--data-dir", str(SAMPLE), "--output", str(tmp_path / "out"),
                 "--name", "soup", "--no-record"])
    assert soup == tmp_path / "out" / "soup" and [p.name for p in (tmp_path / "out").iterdir()] == ["soup"]
    metrics = R.read_metrics(soup)
    assert metrics["soup_of"] == [tiny_run.name, "copy"] and metrics["epochs"] == 0
    assert metrics["top1"] == pytest.approx(R.read_metrics(tiny_run)["top1"])
    assert R.read_train_config(soup)["output"] == str(tmp_path / "out")
    assert (pd.read_parquet(soup / R.PREDICTIONS).sample_id.tolist()
            == pd.read_parquet(tiny_run / R.PREDICTIONS).sample_id.tolist())


def test_runs_evaluated_on_other_images_make_no_soup(tmp_path, tiny_run, capsys):
    other = train_tiny(tmp_path, "--seed", "1", name="other-carve")  # another seed carves other validation images
    with pytest.raises(SystemExit, match="evaluated on different images"):
        main([str(tiny_run), str(other), "--output", str(tmp_path / "out"), "--no-record"])
    with pytest.raises(SystemExit, match="needs at least two runs"):
        main([str(tiny_run), "--output", str(tmp_path / "out"), "--no-record"])
    with pytest.raises(SystemExit, match="is not a run folder"):
        main([str(tiny_run), str(tmp_path), "--output", str(tmp_path / "out"), "--no-record"])
    assert not (tmp_path / "out").exists()


def test_runs_are_ranked_on_validation_never_on_a_test_split(tmp_path, tiny_run):
    """A run scored on its test split is ranked by its validation top-1; one that records none cannot join."""
    runs = [Path(shutil.copytree(tiny_run, tmp_path / name, ignore=shutil.ignore_patterns("checkpoint")))
            for name in ("good-on-val", "good-on-test")]
    metrics = R.read_metrics(tiny_run) | {"eval_split": "test"}
    R.write_json(runs[0] / R.METRICS, metrics | {"top1": 0.5, R.VAL_TOP1: 0.9})
    R.write_json(runs[1] / R.METRICS, metrics | {"top1": 0.9, R.VAL_TOP1: 0.5})
    assert [i.run.name for i in ingredients(runs[::-1])] == ["good-on-val", "good-on-test"]
    R.write_json(runs[1] / R.METRICS, {k: v for k, v in metrics.items() if k != R.VAL_TOP1} | {"top1": 0.9})
    with pytest.raises(SoupError, match="good-on-test was evaluated on its test split and records no validation"):
        ingredients(runs)
