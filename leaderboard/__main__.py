"""Leaderboard CLI: python -m leaderboard {ingest,sync,show,export} [--db PATH] ...

The store is `--db PATH`, else $ARENA_DB, else ~/.cache/backbone-arena/leaderboard.db.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from leaderboard import hub
from leaderboard.hub import HubSyncError
from leaderboard.store import COLUMNS, Store, StoreError, default_db_path

SHOW_COLUMNS = [
    "run_id", "dataset", "model", "pretrained_tag", "strategy", "top1", "top5", "macro_f1", "auroc",
    "params", "latency_ms", "epochs", "hub_repo",
]  # fmt: skip


def _format(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def show(store: Store, dataset: str | None, model: str | None, sort: str, ascending: bool) -> None:
    frame = store.runs(dataset=dataset, model=model).sort_values(sort, ascending=ascending, na_position="last")
    table = Table(title=f"Backbone Arena leaderboard ({len(frame)} runs, {store.path})")
    for column in SHOW_COLUMNS:
        table.add_column(column, justify="right" if column in ("top1", "top5", "macro_f1", "auroc") else "left")
    for record in frame[SHOW_COLUMNS].astype(object).to_dict("records"):
        table.add_row(*(_format(record[c]) for c in SHOW_COLUMNS))
    Console(width=200).print(table)


def parser() -> argparse.ArgumentParser:
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", type=Path, help=f"store path (default: $ARENA_DB, else {default_db_path()})")
    root = argparse.ArgumentParser(prog="python -m leaderboard", description=__doc__.splitlines()[0])
    commands = root.add_subparsers(dest="command", required=True)
    ingest = commands.add_parser("ingest", parents=[db], help="record run folders (or folders holding them)")
    ingest.add_argument("dirs", nargs="+", type=Path)
    sync = commands.add_parser("sync", parents=[db], help="read an organisation's model cards from the Hub")
    sync.add_argument("--hub-author", required=True, metavar="ORG")
    show_cmd = commands.add_parser("show", parents=[db], help="print the leaderboard")
    show_cmd.add_argument("--dataset")
    show_cmd.add_argument("--model")
    show_cmd.add_argument("--sort", default="top1", choices=COLUMNS, metavar="COL", help="column (default top1)")
    show_cmd.add_argument("--ascending", action="store_true", help="smallest first (default: largest first)")
    export = commands.add_parser("export", parents=[db], help="write all rows to a file")
    target = export.add_mutually_exclusive_group(required=True)
    target.add_argument("--csv", type=Path, metavar="FILE")
    target.add_argument("--parquet", type=Path, metavar="FILE")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        store = Store(args.db)
        if args.command == "ingest":
            report = store.ingest(args.dirs)
            print(report)
            return 1 if report.skipped else 0
        if args.command == "sync":
            report = hub.sync(store, args.hub_author)
            print(report)
            return 1 if report.skipped else 0
        if args.command == "show":
            show(store, args.dataset, args.model, args.sort, args.ascending)
        else:
            fmt, target = ("csv", args.csv) if args.csv else ("parquet", args.parquet)
            print(f"exported {len(store.runs())} runs to {store.export(target, fmt)}")
    except (StoreError, HubSyncError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
