"""SQLite leaderboard store: one row per run, keyed by the run folder's name.

Location: `--db PATH` on every CLI command, else the `ARENA_DB` environment variable, else
`~/.cache/backbone-arena/leaderboard.db` (see `default_db_path`). The database runs in WAL mode with a busy timeout
so that several trainers can record runs at once; the schema carries a version and forward migrations, so a store
written today opens after the schema grows.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from runfolder import METRICS, MetricsError, find_runs, read_metrics

BUSY_TIMEOUT_MS = 60_000

# Forward migrations: MIGRATIONS[i] takes the schema from version i to i + 1. Append, never edit.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        dataset TEXT NOT NULL,
        eval_split TEXT,
        task_type TEXT NOT NULL CHECK (task_type IN ('binary', 'multiclass')),
        num_classes INTEGER NOT NULL,
        model TEXT NOT NULL,
        pretrained_tag TEXT,
        strategy TEXT,
        top1 REAL,
        top5 REAL,
        macro_f1 REAL,
        auroc REAL,
        params INTEGER,
        macs INTEGER,
        train_images_per_s REAL,
        latency_ms REAL,
        epochs INTEGER,
        wall_s REAL,
        created TEXT NOT NULL,
        run_path TEXT,
        hub_repo TEXT,
        git_rev TEXT,
        metrics_json TEXT NOT NULL
    );
    CREATE INDEX runs_dataset_model ON runs (dataset, model);
    """,
    # the evaluation's sample count: with top1, each run's top-1 interval without parsing metrics_json
    """
    ALTER TABLE runs ADD COLUMN num_samples INTEGER;
    UPDATE runs SET num_samples = json_extract(metrics_json, '$.num_samples');
    """,
]
# Columns copied as-is from metrics.json keys of the same name.
METRIC_COLUMNS = [
    "dataset", "eval_split", "num_classes", "model", "pretrained_tag", "strategy", "top1", "top5", "macro_f1",
    "auroc", "params", "macs", "train_images_per_s", "latency_ms", "epochs", "wall_s", "git_rev", "num_samples",
]  # fmt: skip
COLUMNS = ["run_id", *METRIC_COLUMNS, "task_type", "created", "run_path", "hub_repo", "metrics_json"]


class StoreError(RuntimeError):
    """The store cannot be used (written by a newer version, unreadable), with the reason."""


def default_db_path() -> Path:
    """The store used when no `--db` is given: `$ARENA_DB` if set, else ~/.cache/backbone-arena/leaderboard.db."""
    env = os.environ.get("ARENA_DB")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "backbone-arena" / "leaderboard.db"


def row_from_metrics(
    run_id: str, metrics: dict[str, Any], created: str, run_path: str | None = None, hub_repo: str | None = None
) -> dict[str, Any]:
    """The store row of a run: headline figures as columns, the full metrics.json alongside."""
    row = {key: metrics.get(key) for key in METRIC_COLUMNS}
    return row | {
        "run_id": run_id,
        "task_type": "binary" if metrics["num_classes"] == 2 else "multiclass",
        "created": created,
        "run_path": run_path,
        "hub_repo": hub_repo,
        "metrics_json": json.dumps(metrics, sort_keys=True),
    }


def _created(run_dir: Path, metrics: dict[str, Any]) -> str:
    """When the run finished: metrics.json's `created` if the trainer wrote one, else the file's mtime (UTC)."""
    if isinstance(metrics.get("created"), str):
        return metrics["created"]
    mtime = (run_dir / METRICS).stat().st_mtime
    return datetime.fromtimestamp(mtime, UTC).isoformat(timespec="seconds")


@dataclass
class IngestReport:
    recorded: list[str] = field(default_factory=list)  # run ids
    skipped: dict[str, str] = field(default_factory=dict)  # path -> reason

    def __str__(self) -> str:
        lines = [f"recorded {len(self.recorded)} run(s), skipped {len(self.skipped)}"]
        lines += [f"  skipped {path}: {reason}" for path, reason in self.skipped.items()]
        return "\n".join(lines)


class Store:
    """The leaderboard database at `path` (created with its folder on first use)."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path else default_db_path()
        if self.path.is_dir():
            raise StoreError(f"--db {self.path}: a folder; name the store file in it, e.g. {self.path / 'arena.db'}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise StoreError(f"--db {self.path}: {self.path.parent} is a file, not a folder") from None
        self._migrate()

    @classmethod
    def existing(cls, path: Path | str | None = None) -> Store:
        """The store at `path` for reading; StoreError when there is none (a mistyped --db must not make one)."""
        store_path = Path(path) if path else default_db_path()
        if not store_path.is_file():
            raise StoreError(f"no leaderboard store at {store_path}: `python -m leaderboard ingest RUN_DIR` records "
                             "runs into one (--db or $ARENA_DB names another)")
        return cls(store_path)

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode; writes open their own BEGIN IMMEDIATE so the write lock is taken up front (with the busy
        # timeout) instead of failing on a read-to-write upgrade.
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        try:  # the first statement that reads the file
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.DatabaseError as err:
            conn.close()
            if err.sqlite_errorname not in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):  # e.g. locked past the timeout
                raise
            raise StoreError(f"{self.path} is not a leaderboard store ({err}): give another --db, or move it "
                             "aside and ingest the run folders again") from err
        conn.execute("PRAGMA synchronous = NORMAL")  # durable in WAL mode except for a power cut's last commits
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction: committed on success, rolled back on any error."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def _migrate(self) -> None:
        with self._write() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            found = conn.execute("SELECT version FROM schema_version").fetchone()
            version = found[0] if found else 0
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"{self.path} has schema version {version}, newer than this code's {len(MIGRATIONS)}: "
                    "update Backbone Arena to read it"
                )
            if version == len(MIGRATIONS):
                return  # current: opening the store writes nothing (readers' caches key on the file)
            for migration in MIGRATIONS[version:]:
                # statement by statement: executescript() would COMMIT and break this transaction
                for statement in filter(str.strip, migration.split(";")):
                    conn.execute(statement)
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (len(MIGRATIONS),))

    def schema_version(self) -> int:
        conn = self._connect()
        try:
            return conn.execute("SELECT version FROM schema_version").fetchone()[0]
        finally:
            conn.close()

    def upsert(self, row: dict[str, Any]) -> None:
        """Insert or replace one run's row; a NULL hub_repo or run_path keeps the one already recorded."""
        columns = ", ".join(COLUMNS)
        updates = ", ".join(
            f"{c} = COALESCE(excluded.{c}, runs.{c})" if c in ("hub_repo", "run_path") else f"{c} = excluded.{c}"
            for c in COLUMNS[1:]
        )
        sql = (
            f"INSERT INTO runs ({columns}) VALUES ({', '.join(':' + c for c in COLUMNS)}) "
            f"ON CONFLICT (run_id) DO UPDATE SET {updates}"
        )
        with self._write() as conn:
            conn.execute(sql, {c: row.get(c) for c in COLUMNS})

    def record_run(self, run_dir: Path, hub_repo: str | None = None) -> str:
        """Record (or update) the run in `run_dir` in one transaction; returns its run id (the folder name)."""
        run_dir = Path(run_dir).resolve()
        metrics = read_metrics(run_dir)
        self.upsert(row_from_metrics(run_dir.name, metrics, _created(run_dir, metrics), str(run_dir), hub_repo))
        return run_dir.name

    def ingest(self, paths: Iterable[Path]) -> IngestReport:
        """Record every run folder found under `paths`; unreadable or unknown metrics are reported and skipped."""
        report = IngestReport()
        paths = [Path(p) for p in paths]
        report.skipped.update({str(p): "no such file or directory" for p in paths if not p.exists()})
        for run_dir in find_runs(p for p in paths if p.exists()):
            try:
                report.recorded.append(self.record_run(run_dir))
            except (MetricsError, OSError, UnicodeDecodeError) as error:
                report.skipped[str(run_dir / METRICS)] = str(error)
        return report

    def runs(self, dataset: str | None = None, model: str | None = None) -> pd.DataFrame:
        """All rows (optionally of one dataset and/or model), best top-1 first."""
        where = [f"{name} = :{name}" for name, value in (("dataset", dataset), ("model", model)) if value]
        sql = "SELECT * FROM runs" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY top1 DESC"
        conn = self._connect()
        try:
            return pd.read_sql_query(sql, conn, params={"dataset": dataset, "model": model})
        finally:
            conn.close()

