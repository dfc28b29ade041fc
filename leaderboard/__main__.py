"""Leaderboard CLI: python -m leaderboard {ingest,sync,show,export} [--db PATH] ...

The store is `--db PATH`, else $ARENA_DB, else ~/.cache/backbone-arena/leaderboard.db.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table

from leaderboard import hub
from leaderboard.columns import Column, short_model_name
from leaderboard.hub import HubSyncError
from leaderboard.store import COLUMNS, Store, StoreError, default_db_path
from runfolder.metrics import COSTS, SCORES

# `show` fits an 80-column terminal; `--wide` shows every column in full, `--ids` only the run ids.
SHOW_COLUMNS = ["run_id", "dataset", "model", "top1", "top5", "macro_f1", "latency_ms"]
WIDE_COLUMNS = ["run_id", "dataset", "model", "pretrained_tag", "strategy", *SCORES, *COSTS, "train_images_per_s",
                "epochs", "hub_repo"]  # fmt: skip
RUN_ID_FLOOR, NAME_FLOOR = 20, 8  # narrowest a truncated run id / dataset or model name gets
COLUMN_GAP = 3  # padding either side plus the (blank) divider of box.SIMPLE_HEAD


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def fit_widths(natural: list[int], floors: list[int], budget: int) -> list[int]:
    """Column widths that fit `budget`: narrow the widest column still above its floor, one character at a time
    (rich's own collapse only narrows columns it may wrap, and it crops a table of unbreakable names)."""
    widths = list(natural)
    while sum(widths) > budget and (shrinkable := [i for i, w in enumerate(widths) if w > floors[i]]):
        widths[max(shrinkable, key=widths.__getitem__)] -= 1
    return widths


def compact_widths(columns: list[Column], natural: list[int], width: int) -> list[int]:
    """Widths for a `width`-character terminal: numbers keep theirs; dataset and model names narrow first (down to
    NAME_FLOOR), the run id last (down to RUN_ID_FLOOR)."""
    budget = width - COLUMN_GAP * (len(columns) - 1)
    names_first = [n if c.numeric or c.key == "run_id" else NAME_FLOOR for c, n in zip(columns, natural, strict=True)]
    then_id = [RUN_ID_FLOOR if c.key == "run_id" else floor for c, floor in zip(columns, names_first, strict=True)]
    return fit_widths(fit_widths(natural, names_first, budget), then_id, budget)


def leaderboard_table(frame: pd.DataFrame, wide: bool, width: int) -> tuple[Table, bool]:
    """The runs as a rich table, and whether a cell had to be shortened with '…' to fit `width` characters.

    `wide`: every column at full width. Otherwise the compact columns, with short model names."""
    columns = [Column(key) for key in (WIDE_COLUMNS if wide else SHOW_COLUMNS)]
    if not wide:
        frame = frame.assign(model=frame["model"].map(short_model_name))
    rows = [[column.text(value) for column, value in zip(columns, record, strict=True)]
            for record in frame[[c.key for c in columns]].itertuples(index=False)]  # fmt: skip
    natural = [max([len(c.heading), *(len(row[i]) for row in rows)]) for i, c in enumerate(columns)]
    widths = natural if wide else compact_widths(columns, natural, width)
    table = Table(title=f"Backbone Arena leaderboard: {plural(len(frame), 'run')}", box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False)  # fmt: skip
    for column, column_width in zip(columns, widths, strict=True):
        table.add_column(column.heading, justify="right" if column.numeric else "left", no_wrap=True,
                         overflow="ellipsis", width=column_width)  # fmt: skip
    for row in rows:
        table.add_row(*row)
    return table, widths != natural


def show(store: Store, dataset: str | None, model: str | None, sort: str, ascending: bool, layout: str) -> None:
    """Print the leaderboard: a table that fits the terminal, every column in full (`wide`), or the run ids."""
    frame = store.runs(dataset=dataset, model=model).sort_values(sort, ascending=ascending, na_position="last")
    if layout == "ids":
        print("\n".join(frame["run_id"]))
        return
    wide = layout == "wide"
    console = Console(width=1_000_000) if wide else Console()  # wide: never wrapped, scroll or pipe it instead
    table, shortened = leaderboard_table(frame, wide, console.width)
    console.print(table)
    if shortened:
        console.print("… marks a shortened name: --ids prints the full run ids, --wide every column")
    console.print(f"store: {store.path}", soft_wrap=True, highlight=False)


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
    layout = show_cmd.add_mutually_exclusive_group()
    layout.add_argument("--wide", dest="layout", action="store_const", const="wide",
                        help="every column, full run ids and model names, however wide the terminal")  # fmt: skip
    layout.add_argument("--ids", dest="layout", action="store_const", const="ids",
                        help="only the full run ids, one a line, in table order")  # fmt: skip
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
            show(store, args.dataset, args.model, args.sort, args.ascending, args.layout)
        else:
            fmt, target = ("csv", args.csv) if args.csv else ("parquet", args.parquet)
            print(f"exported {len(store.runs())} runs to {store.export(target, fmt)}")
    except (StoreError, HubSyncError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
