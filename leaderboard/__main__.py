"""Leaderboard CLI: python -m leaderboard {ingest,sync,show,export,compare} [--db PATH] ...

The store is `--db PATH`, else $ARENA_DB, else ~/.cache/backbone-arena/leaderboard.db.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table

import verdict as V
from leaderboard import hub
from leaderboard.columns import Column, short_model_name
from leaderboard.hub import HubSyncError
from leaderboard.standings import EXPORT_WRITERS, export, seed_text, with_verdict
from leaderboard.store import COLUMNS, Store, StoreError, default_db_path
from runfolder import METRICS, is_run
from runfolder.metrics import COSTS, PERCENT, SCORES

# `show` fits an 80-column terminal; `--wide` shows every column in full, `--ids` only the run ids.
SHOW_COLUMNS = ["run_id", "dataset", "model", "tier", "top1_ci", "latency_ms"]
WIDE_COLUMNS = ["run_id", "dataset", "model", "pretrained_tag", "strategy", "tier", "top1_ci", "seeds", *SCORES,
                *COSTS, "train_images_per_s", "epochs", "hub_repo"]  # fmt: skip
TIER_NOTE = (f"tier 1: the runs that {V.TIER_RULE}; tier 2 repeats this among the rest. {V.TOP1_CI_HEADING}: top-1 "
             "± half its Wilson interval, in points (--wide: every figure).")
RUN_ID_FLOOR, NAME_FLOOR = 16, 8  # narrowest a truncated run id / model name gets
WHOLE = ("dataset",)  # never shortened: tiers are per dataset, and chest-xray and chest-xray-3 share a prefix
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


def shortened(text: str, width: int) -> str:
    """`text` in `width` characters, cut in the middle: names of one task share their start (the dataset, the
    backbone family) and differ at the end (`xray_cnn1` / `xray_cnn2`, `-linear_probe`, `-seed42`), so the end
    keeps two thirds. (rich's own overflow only cuts the end.)"""
    if len(text) <= width:
        return text
    head = (width - 1) // 3
    return f"{text[:head]}…{text[len(text) - (width - 1 - head):]}"


def compact_widths(columns: list[Column], natural: list[int], width: int) -> list[int]:
    """Widths for a `width`-character terminal: numbers and datasets keep theirs; model names narrow first (down to
    NAME_FLOOR), the run id last (down to RUN_ID_FLOOR)."""
    budget = width - COLUMN_GAP * (len(columns) - 1)
    names_first = [n if c.numeric or c.key == "run_id" or c.key in WHOLE else NAME_FLOOR
                   for c, n in zip(columns, natural, strict=True)]
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
                         width=column_width)
    for row in rows:
        table.add_row(*(shortened(cell, column_width) for cell, column_width in zip(row, widths, strict=True)))
    return table, widths != natural


def show(store: Store, dataset: str | None, model: str | None, sort: str, ascending: bool, layout: str) -> None:
    """Print the leaderboard: a table that fits the terminal, every column in full (`wide`), or the run ids."""
    frame = with_verdict(store.runs(dataset=dataset, model=model))
    if frame.empty and (dataset or model):
        runs = store.runs()
        asked = " and ".join(f"--{key} {value}" for key, value in (("dataset", dataset), ("model", model)) if value)
        raise ValueError(f"no run of {asked} in {store.path}; it holds datasets "
                         f"{', '.join(sorted(runs['dataset'].unique())) or 'none'} and models "
                         f"{', '.join(sorted(runs['model'].unique())) or 'none'}")
    frame = frame.assign(seeds=frame.apply(seed_text, axis=1) if len(frame) else None)
    frame = frame.sort_values(sort, ascending=ascending, na_position="last")
    frame = frame.astype(object).where(frame.notna(), None)  # pandas' NA of a run without tier: an empty cell
    if layout == "ids":
        print("\n".join(frame["run_id"]))
        return
    wide = layout == "wide"
    console = Console(width=1_000_000) if wide else Console()  # wide: never wrapped, scroll or pipe it instead
    table, shortened = leaderboard_table(frame, wide, console.width)
    console.print(table)
    if shortened:
        console.print("… marks a shortened name: --ids prints the full run ids, --wide every column")
    console.print(TIER_NOTE, highlight=False)
    console.print(f"store: {store.path}", soft_wrap=True, highlight=False)


def resolve_run(db: Path | None, reference: str) -> tuple[str, Path]:
    """(name, run folder) of a run folder path or a run id in the store at `db` (opened only to look one up);
    ValueError or StoreError when neither gives a local folder."""
    path = Path(reference)
    if is_run(path):
        return path.resolve().name, path
    try:
        store = Store.existing(db)
    except StoreError as error:
        raise ValueError(f"{reference}: not a run folder; as a run id: {error}") from None
    rows = store.runs()
    row = rows[rows["run_id"] == reference]
    if row.empty:
        raise ValueError(f"{reference}: neither a run folder nor a run id in the store {store.path}")
    run_path = row["run_path"].iloc[0]
    if not run_path:
        raise ValueError(f"{reference}: recorded from the Hub only, no local run folder with predictions to compare")
    return reference, Path(run_path)


def print_comparison(result: V.Comparison) -> None:
    console = Console(width=160)
    for side, name, accuracy in (("A", result.name_a, result.a), ("B", result.name_b, result.b)):
        console.print(f"{side}: {name}  top-1 {accuracy}", highlight=False)
    console.print("    (95% Wilson score intervals)")
    if not result.pairing.paired:
        console.print(f"No paired test: {result.pairing.reason}", highlight=False)
        return
    outcomes = result.outcomes
    console.print(
        f"difference A − B: {result.difference * 100:+.1f} points (95% CI {result.difference_interval.low * 100:+.1f} "
        f"to {result.difference_interval.high * 100:+.1f}; paired bootstrap, {V.BOOTSTRAP_RESAMPLES:,} resamples, "
        f"seed {V.BOOTSTRAP_SEED})",
        highlight=False,
    )
    console.print(
        f"McNemar exact test: {', '.join(f'{V.OUTCOMES[key]} {getattr(outcomes, key):,}' for key in V.OUTCOMES)}; "
        f"p = {V.format_p(result.p_value)}",
        highlight=False,
    )
    table = Table(title="Per-class recall", box=box.SIMPLE_HEAD)
    for column in ("class", "support", "recall A", "recall B", "A − B (points)"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for c in sorted(result.per_class, key=lambda c: -abs(c.difference)):
        table.add_row(c.label, f"{c.support:,}", PERCENT.number(c.recall_a), PERCENT.number(c.recall_b),
                      f"{c.difference * 100:+.1f}")
    console.print(table)
    console.print(f"verdict: {result.verdict}", highlight=False)


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
    show_cmd.add_argument("--sort", default="top1", choices=[*COLUMNS, "tier"], metavar="COL",
                          help="column (default top1)")
    show_cmd.add_argument("--ascending", action="store_true", help="smallest first (default: largest first)")
    layout = show_cmd.add_mutually_exclusive_group()
    layout.add_argument("--wide", dest="layout", action="store_const", const="wide",
                        help="every column, full run ids and model names, however wide the terminal")  # fmt: skip
    layout.add_argument("--ids", dest="layout", action="store_const", const="ids",
                        help="only the full run ids, one a line, in table order")  # fmt: skip
    export = commands.add_parser("export", parents=[db], help="write all rows to a file")
    target = export.add_mutually_exclusive_group(required=True)
    for fmt in EXPORT_WRITERS:
        target.add_argument(f"--{fmt}", type=Path, metavar="FILE")
    compare = commands.add_parser("compare", parents=[db], help="is run A better than run B? (paired tests)")
    compare.add_argument("run_a", metavar="RUN_A", help="run folder or store run id")
    compare.add_argument("run_b", metavar="RUN_B", help="run folder or store run id")
    compare.add_argument("--json", action="store_true", help="print the figures as JSON")
    return root


def write(store: Store, args: argparse.Namespace) -> int:
    """`ingest` or `sync`: the report, and exit status 1 when a run was skipped or nothing was found to record."""
    report = store.ingest(args.dirs) if args.command == "ingest" else hub.sync(store, args.hub_author)
    print(report)
    if not report.recorded and not report.skipped:
        found_none = (f"no run folder (one holding {METRICS}) in {', '.join(map(str, args.dirs))}"
                      if args.command == "ingest" else f"no timm model of {args.hub_author} on the Hub")
        print(f"error: {found_none}", file=sys.stderr)
    return 1 if report.skipped or not report.recorded else 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command in ("ingest", "sync"):  # the commands that write create the store; the others only read it
            return write(Store(args.db), args)
        if args.command == "show":
            show(Store.existing(args.db), args.dataset, args.model, args.sort, args.ascending, args.layout)
        elif args.command == "compare":
            (name_a, run_a), (name_b, run_b) = (resolve_run(args.db, ref) for ref in (args.run_a, args.run_b))
            if run_a.resolve() == run_b.resolve():
                raise ValueError(f"{args.run_a} and {args.run_b} are the same run folder: name two runs")
            result = V.compare_runs(run_a, run_b, name_a, name_b)
            if args.json:
                print(json.dumps(result.to_dict(), indent=2))
            else:
                print_comparison(result)
        else:
            store = Store.existing(args.db)
            fmt, target = next((fmt, getattr(args, fmt)) for fmt in EXPORT_WRITERS if getattr(args, fmt))
            runs = store.runs()
            print(f"exported {len(runs)} runs to {export(runs, target, fmt)}")
    except (StoreError, HubSyncError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
