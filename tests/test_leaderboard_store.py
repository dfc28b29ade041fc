"""Leaderboard store: upserts, migrations, ingest, Hub-card rows, CLI, export and real multi-process writes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from fixtures_runs import make_run
from huggingface_hub import ModelCard

import leaderboard.store as store_module
from leaderboard.__main__ import main
from leaderboard.hub import row_from_card
from leaderboard.standings import export
from leaderboard.store import MIGRATIONS, Store, StoreError, default_db_path
from model_cards.card import write_card

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    make_run(root, "chest-a", dataset="chest-xray")
    make_run(root / "nested", "cifar-b", dataset="cifar10")
    return root


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "db" / "leaderboard.db")


def test_default_db_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ARENA_DB", str(tmp_path / "x.db"))
    assert default_db_path() == tmp_path / "x.db"
    monkeypatch.delenv("ARENA_DB")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_db_path() == tmp_path / ".cache" / "backbone-arena" / "leaderboard.db"


def test_wal_mode_and_schema_version(store: Store) -> None:
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.schema_version() == len(MIGRATIONS)


def test_a_file_that_is_no_store_is_named_and_left_alone(runs_root: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    """A --db that is some other file: the CLI says so in one line; a finished training keeps its run folder, says
    how to record it later, and exits 1; the file is not touched."""
    notes = tmp_path / "notes.db"
    notes.write_text("not a database\n")
    with pytest.raises(StoreError, match="notes.db is not a leaderboard store"):
        Store(notes)
    assert main(["show", "--db", str(notes)]) == 1
    assert "is not a leaderboard store" in capsys.readouterr().err
    from trainers.config import TrainConfig
    from trainers.finetune import publish_and_record

    with pytest.raises(SystemExit) as exit_:
        publish_and_record(TrainConfig(record=True, db=str(notes)), runs_root / "chest-a")
    assert exit_.value.code == 1
    assert "record it later with python -m leaderboard ingest" in capsys.readouterr().err
    assert notes.read_text() == "not a database\n"


def test_record_run_is_an_upsert(store: Store, runs_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "chest-a"
    make_run(tmp_path, "chest-a")
    assert store.record_run(run, hub_repo="acme/chest-a") == "chest-a"
    store.record_run(run)  # again, without a repo: same row, repo kept
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps(metrics | {"top1": 0.99}))
    store.record_run(run)
    rows = store.runs()
    assert len(rows) == 1
    row = rows.iloc[0]
    assert (row.run_id, row.top1, row.hub_repo, row.task_type) == ("chest-a", 0.99, "acme/chest-a", "binary")
    assert row.auroc == metrics["auroc"] and pd.isna(row.top5)
    assert json.loads(row.metrics_json) == metrics | {"top1": 0.99}
    assert row.run_path == str(run.resolve())


def test_forward_migration_keeps_rows(store: Store, runs_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store.record_run(runs_root / "chest-a")
    grown = [*MIGRATIONS, "ALTER TABLE runs ADD COLUMN notes TEXT; CREATE INDEX runs_model ON runs (model)"]
    monkeypatch.setattr(store_module, "MIGRATIONS", grown)
    reopened = Store(store.path)
    assert reopened.schema_version() == len(grown)
    assert list(reopened.runs().run_id) == ["chest-a"] and "notes" in reopened.runs().columns
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS)
    with pytest.raises(StoreError, match="newer than this code"):
        Store(store.path)


def test_ingest_skips_corrupt_and_unknown_runs(store: Store, runs_root: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    (bad / "corrupt").mkdir(parents=True)
    (bad / "corrupt" / "metrics.json").write_text('{"dataset": "cifar10", "top1": 0.')
    (bad / "unknown").mkdir()
    (bad / "unknown" / "metrics.json").write_text(json.dumps({"accuracy": 0.9, "arch": "resnet50"}))
    (bad / "future").mkdir()
    future = json.loads((runs_root / "chest-a" / "metrics.json").read_text()) | {"schema": 2}
    (bad / "future" / "metrics.json").write_text(json.dumps(future))
    report = store.ingest([runs_root, bad])
    again = store.ingest([runs_root / "chest-a"])  # a run folder itself, and idempotent
    assert sorted(report.recorded) == ["chest-a", "cifar-b"] and again.recorded == ["chest-a"]
    assert set(report.skipped) == {str(bad / name / "metrics.json") for name in ("corrupt", "unknown", "future")}
    assert "unknown schema 2" in report.skipped[str(bad / "future" / "metrics.json")]
    assert "corrupt JSON" in report.skipped[str(bad / "corrupt" / "metrics.json")]
    assert "unknown schema" in report.skipped[str(bad / "unknown" / "metrics.json")]
    assert len(store.runs()) == 2
    assert list(store.runs(dataset="cifar10").run_id) == ["cifar-b"]
    assert store.runs(dataset="cifar10", model="resnet50").empty


def test_export(store: Store, runs_root: Path, tmp_path: Path) -> None:
    store.ingest([runs_root])
    csv = pd.read_csv(export(store.runs(), tmp_path / "out" / "board.csv"))
    parquet = pd.read_parquet(export(store.runs(), tmp_path / "board.parquet"))
    assert sorted(csv.run_id) == sorted(parquet.run_id) == ["chest-a", "cifar-b"]
    assert parquet.top1.tolist() == store.runs().top1.tolist()
    with pytest.raises(ValueError, match="csv or .parquet"):
        export(store.runs(), tmp_path / "board.xlsx")


def test_row_from_hub_card_matches_the_local_row(store: Store, tmp_path: Path) -> None:
    run = make_run(tmp_path, "cifar-hub", dataset="cifar10")
    card = ModelCard.load(write_card(run, hub_repo="acme/cifar-hub"))
    metrics = json.loads((run / "metrics.json").read_text())
    store.record_run(run)
    store.upsert(row_from_card("acme/cifar-hub", card, metrics, created="2026-01-02T03:04:05+00:00"))
    rows = store.runs()
    assert len(rows) == 1, "the card's model-index name is the run id: one row, now with its Hub repo"
    row = rows.iloc[0]
    assert (row.hub_repo, row.dataset, row.top1, row.top5) == (
        "acme/cifar-hub",
        "cifar10",
        metrics["top1"],
        metrics["top5"],
    )


def test_cli_ingest_show_export(runs_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "cli.db")
    assert main(["ingest", str(runs_root), "--db", db]) == 0
    assert "recorded 2 run(s), skipped 0" in capsys.readouterr().out
    assert main(["show", "--db", db, "--dataset", "cifar10", "--sort", "top1"]) == 0
    shown = capsys.readouterr().out
    assert "cifar-b" in shown and "chest-a" not in shown
    assert main(["export", "--db", db, "--parquet", str(tmp_path / "e.parquet")]) == 0
    assert len(pd.read_parquet(tmp_path / "e.parquet")) == 2
    assert main(["export", "--db", db, "--csv", str(tmp_path / "e.parquet")]) == 1  # CSV under a parquet name
    assert "its suffix says .parquet; name a .csv file" in capsys.readouterr().err
    assert len(pd.read_parquet(tmp_path / "e.parquet")) == 2  # the file it would have overwritten is intact
    assert main(["ingest", str(tmp_path / "nothing-here"), "--db", db]) == 1
    assert "nothing-here: no such file or directory" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert main(["ingest", str(tmp_path / "empty"), "--db", db]) == 1
    assert f"no run folder (one holding metrics.json) in {tmp_path / 'empty'}" in capsys.readouterr().err
    assert main(["show", "--db", db, "--dataset", "Cifar10"]) == 1
    err = capsys.readouterr().err
    assert "no run of --dataset Cifar10 in " in err and "datasets chest-xray, cifar10" in err
    assert main(["ingest", str(runs_root), "--db", str(tmp_path)]) == 1  # a folder is no store file
    assert f"--db {tmp_path}: a folder; name the store file in it" in capsys.readouterr().err
    run = str(runs_root / "nested" / "cifar-b")
    assert main(["compare", run, run, "--db", db]) == 1
    assert "are the same run folder: name two runs" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["show"], ["export", "--csv", "out.csv"]])
def test_cli_reading_a_store_that_is_not_there_creates_none(tmp_path: Path, command: list[str], capsys) -> None:
    typo = tmp_path / "typo" / "leaderbord.db"
    assert main([*command, "--db", str(typo)]) == 1
    assert f"no leaderboard store at {typo}" in capsys.readouterr().err
    assert not typo.parent.exists()


LONG_ID = "tiny-imagenet-efficientnet_lite0-full-finetune-seed42"


@pytest.fixture
def long_id_db(tmp_path: Path) -> str:
    db = tmp_path / "long.db"
    run = make_run(tmp_path / "runs", LONG_ID, dataset="cifar10", model="tf_efficientnet_lite0", latency_ms=755.8808)
    Store(db).record_run(run)
    return str(db)


def test_cli_show_fits_80_columns(long_id_db: str, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["show", "--db", long_id_db]) == 0
    shown = capsys.readouterr().out
    assert max(len(line) for line in shown.splitlines()) <= 80
    assert "1 run" in shown and "1 runs" not in shown
    assert "756 ms" in shown and "755.88" not in shown
    assert LONG_ID not in shown and "--ids" in shown  # shortened, and says how to see it
    shown_id = next(line.split()[0] for line in shown.splitlines() if line.startswith(LONG_ID[:5]))
    head, tail = shown_id.split("…")  # cut in the middle: the end that tells runs of one task apart stays
    assert LONG_ID.startswith(head) and LONG_ID.endswith(tail) and tail.endswith("-seed42") and len(tail) > len(head)
    assert "None" not in shown and "nan" not in shown  # a missing value is an empty cell
    monkeypatch.setenv("COLUMNS", "140")
    assert main(["show", "--db", long_id_db]) == 0
    roomy = capsys.readouterr().out
    assert LONG_ID in roomy and "efficientnet_lite0" in roomy and "tf_efficientnet" not in roomy  # short name
    assert "--ids" not in roomy  # nothing shortened, no hint


def test_cli_show_full_run_ids(long_id_db: str, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["show", "--db", long_id_db, "--ids"]) == 0
    assert capsys.readouterr().out == f"{LONG_ID}\n"
    assert main(["show", "--db", long_id_db, "--wide"]) == 0
    wide = capsys.readouterr().out
    assert LONG_ID in wide and "tf_efficientnet_lite0" in wide and "…" not in wide


def test_cli_sync_offline_is_a_clear_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")} | {"HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "leaderboard", "sync", "--hub-author", "acme", "--db", str(tmp_path / "s.db")],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "cannot sync from the Hub: offline mode is enabled" in result.stderr


WRITER = """
import sys
from leaderboard.store import Store
store = Store(sys.argv[1])
for run_dir in sys.argv[2:]:
    store.record_run(run_dir)
"""


def test_four_processes_record_800_runs(runs_root: Path, tmp_path: Path) -> None:
    metrics = (runs_root / "chest-a" / "metrics.json").read_bytes()
    run_dirs = []
    for i in range(800):
        run_dir = tmp_path / "many" / f"run-{i:03d}"
        run_dir.mkdir(parents=True)
        (run_dir / "metrics.json").write_bytes(metrics)
        run_dirs.append(str(run_dir))
    db = str(tmp_path / "concurrent.db")
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, db, *run_dirs[i::4]], cwd=ROOT, stderr=subprocess.PIPE, text=True
        )
        for i in range(4)
    ]
    errors = [writer.communicate(timeout=120)[1] for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0, 0, 0], errors
    assert not any("locked" in e for e in errors)
    assert len(Store(db).runs()) == 800


def test_records_a_real_trainer_run(store: Store, tiny_run: Path) -> None:
    assert store.record_run(tiny_run) == tiny_run.name
    row = store.runs().iloc[0]
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert (row.dataset, row.model, row.top1, row.task_type) == (
        "cifar10",
        metrics["model"],
        metrics["top1"],
        "multiclass",
    )
