"""Backbone Arena leaderboard: which backbone wins on which data.

    streamlit run apps/dashboard.py [-- --db PATH]

The store is `--db PATH`, else $ARENA_DB, else ~/.cache/backbone-arena/leaderboard.db (leaderboard.store). Views:
leaderboard table, accuracy-vs-cost trade-offs, one run's details, training curves, two runs compared, and the
error gallery. Reads the store and the run folders only; never imports the training code.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

import verdict as V
from apps import dashboard_data as data
from apps import dashboard_plots as plots
from apps.sources import REFERENCE_RUNS
from leaderboard.store import Store, StoreError
from runfolder import data_dir
from runfolder.metrics import COSTS, METRIC_SPECS, PERCENT, READABLE_CLASSES, SCORES, Format, MetricSpec, Style

EMPTY_HELP = """**No runs in the store yet** (`{db}`).

**Create the first run**: EfficientNet-Lite0 with offline ImageNet weights, fine-tuned on the CIFAR-10 sample
that ships in `data/sample` (a few minutes on a CPU). The finished run is recorded in this store:

```
python trainers/finetune.py --db {db}
```

**Already have run folders?** Open *Add runs* in the sidebar and press *Ingest run folders*, or run
`python -m leaderboard ingest runs/ --db {db}`. Then reload this page.

**Just looking?** Load the reference models that ship in `reference/` (on each task's real images: the source
study's own network from scratch, EfficientNet-Lite0 as a linear probe and fully fine-tuned) with the button below.
"""
RANK_METRICS = list(SCORES)
RUN_ID_WIDTH_PX = 8  # per character of the longest run id: the column shows whole ids


def number_column(label: str, number: Format, help: str | None = None) -> st.column_config.NumberColumn:
    """A grid column that shows a value as `number.number` writes it in text (a percent: 94.4%), once `rounded`."""
    if number.style is Style.SIGNIFICANT:
        shown = {"format": f"%.{number.digits}g"}
    else:  # Streamlit shows the decimals of `step` (of a percent: two fewer)
        shown = {"format": "percent" if number.style is Style.PERCENT else "localized", "step": 10**-number.decimals}
    return st.column_config.NumberColumn(label, help=help, **shown)


def rounded(table: pd.DataFrame, formats: dict[str, Format]) -> pd.DataFrame:
    """`table` with the numbers of grid columns rounded as `Format.number` rounds them: Streamlit cuts the decimals
    past `step` off instead (0.9276 would show as 92.7%, beside a 92.8% elsewhere)."""
    decimals = {column: f.decimals for column, f in formats.items() if column in table and f.decimals is not None}
    return table.round(decimals)


def metric_column(spec: MetricSpec) -> st.column_config.NumberColumn:
    return number_column(spec.heading, spec.format, spec.help or spec.title)


def table_config(table: pd.DataFrame) -> dict:
    """Column configuration of the leaderboard grid; the run id is pinned and as wide as the longest id."""
    longest = int(table["run_id"].str.len().max()) if len(table) else 10
    run_id = st.column_config.TextColumn(
        "run id", width=RUN_ID_WIDTH_PX * longest + 16, pinned=True, help="the run folder's name; select to copy"
    )
    return COLUMN_CONFIG | {"run_id": run_id}


COLUMN_CONFIG = {
    "best": st.column_config.TextColumn("best", help="highest score of its dataset among the runs shown"),
    "pretrained_on": st.column_config.TextColumn("pretrained on", help="what the backbone saw before fine-tuning"),
    "pretrained_tag": st.column_config.TextColumn("pretrained tag"),
    "tier": st.column_config.NumberColumn(
        "tier", format="%d", help=f"1 = {V.TIER_RULE}; 2 = the same among the rest; empty: no readable predictions"),
    "top1_ci": st.column_config.TextColumn(V.TOP1_CI_HEADING, help="± half the 95% Wilson interval, in points"),
    "seeds": st.column_config.TextColumn("seeds", help="runs differing only in --seed: top-1 mean ± std (count)"),
    **{column: metric_column(spec) for column, spec in data.DISPLAY_COLUMNS.items()},
    "date": st.column_config.DatetimeColumn("date", format="YYYY-MM-DD HH:mm"),
    "hub_url": st.column_config.LinkColumn("Hub", display_text=r"https://huggingface\.co/(.*)"),
    "files": st.column_config.TextColumn("files", help="⚠: the run folder has missing or corrupt files"),
    "note": st.column_config.TextColumn("note", width="large"),
    "epochs": st.column_config.NumberColumn("epochs", format="%d", help="epochs this run trained itself: 0 for a soup "
                                            "(it averages runs), a second stage's after its first's"),
}
HEADLINE = (*SCORES, "params", "latency_ms")  # compare's metric cards: the scores, size and speed


def script_args() -> list[str]:
    """Arguments after `streamlit run apps/dashboard.py --`; under AppTest/pytest, argv is the test runner's."""
    return sys.argv[1:] if sys.argv and Path(sys.argv[0]).resolve() == Path(__file__).resolve() else []


# --- cached loading: keys include file signatures, so an ingest or a rewritten file invalidates them -----------


@st.cache_data(show_spinner="Loading runs…", max_entries=4)
def load_table(db: str, signature: tuple) -> pd.DataFrame:
    """The store's rows with derived columns and file checks; `signature` (store_signature) keys the cache."""
    return data.leaderboard_table(_store(db).runs())


READERS = {data.HISTORY: data.read_history, data.PREDICTIONS: data.read_predictions}


@st.cache_data(show_spinner=False, max_entries=64)
def _read_run_file(name: str, run_path: str, signature: tuple) -> pd.DataFrame:
    return READERS[name](run_path)


def run_file(row: pd.Series, name: str) -> tuple[pd.DataFrame | None, str]:
    """(frame, '') or (None, why it cannot be read): a broken file is reported, the rest of the page still shows."""
    if not row["run_path"]:
        return None, f"{row['run_id']}: no local run folder (Hub only), so no {name}"
    path = Path(row["run_path"]) / name
    try:
        return _read_run_file(name, row["run_path"], data.file_signature(path)), ""
    except (OSError, ValueError, KeyError) as error:
        return None, f"{row['run_id']}: cannot read {path}: {type(error).__name__}: {error}"


@st.cache_resource(show_spinner=False)
def _store(db: str) -> Store:
    # Once per process: opening a Store runs its migration transaction, which rewrites the WAL file and so
    # would change store_signature (and miss the cache) on every rerun.
    return Store(db)


def open_store(db: Path) -> Store:
    try:
        return _store(str(db))
    except (StoreError, sqlite3.Error, OSError) as error:
        st.error(f"Cannot open the leaderboard store `{db}`: {error}")
        st.stop()


# --- sidebar --------------------------------------------------------------------------------------------------


def ingest_panel(store: Store, expanded: bool) -> bool:
    """Sidebar panel to record local run folders; True when the store or the file checks may have changed."""
    with st.sidebar.expander("Add runs", expanded=expanded):
        folders = st.text_input("Run folders (comma-separated)", "runs/", key="ingest_path")
        if st.button("Ingest run folders", key="ingest", type="primary"):
            report = store.ingest(Path(p.strip()).expanduser() for p in folders.split(",") if p.strip())
            st.success(f"Recorded {len(report.recorded)} run(s).")
            if report.skipped:
                st.warning("\n".join(f"- skipped `{path}`: {reason}" for path, reason in report.skipped.items()))
            return True
        if st.button("Re-check run folders", key="recheck", help="file checks are cached until the store changes"):
            load_table.clear()
            return True
    return False


def sidebar_filters(table: pd.DataFrame) -> pd.DataFrame:
    sidebar = st.sidebar
    sidebar.header("Filters")
    datasets = sidebar.multiselect("Dataset", sorted(table["dataset"].unique()), key="f_dataset")
    families = sidebar.multiselect("Backbone family", sorted(table["family"].unique()), key="f_family")
    strategies = sidebar.multiselect("Strategy", sorted(table["strategy"].dropna().unique()), key="f_strategy")
    pretraining = sidebar.radio(
        "Pretraining", ["all", "pretrained", "from scratch"], horizontal=True, key="f_pretrained"
    )
    pretrained = {"all": None, "pretrained": True, "from scratch": False}[pretraining]
    return data.filter_runs(table, datasets, families, strategies, pretrained)


# --- views ----------------------------------------------------------------------------------------------------


def metric_label(key: str) -> str:
    return METRIC_SPECS[key].label


def pick_run(runs: pd.DataFrame, label: str, key: str, index: int = 0) -> pd.Series:
    """A selectbox over the runs shown; returns the chosen row."""
    top1 = METRIC_SPECS["top1"]
    names = {
        r.run_id: f"{r.run_id} · {r.model} on {r.dataset} ({top1.text(r.top1)})" for r in runs.itertuples(index=False)
    }
    run_id = st.selectbox(label, list(names), index=min(index, len(names) - 1), format_func=names.get, key=key)
    return runs[runs["run_id"] == run_id].iloc[0]


def leaderboard_view(runs: pd.DataFrame) -> None:
    st.header("Leaderboard")
    left, right = st.columns([3, 1])
    rank = left.selectbox("Rank by", RANK_METRICS, format_func=metric_label, key="rank_by")
    expand = right.toggle("Expand seed groups", key="expand_seeds", help="one row per run instead of per seed group")
    shown = runs if expand else data.collapse_seed_groups(runs)
    ranked = data.ranked(data.mark_best(shown, rank), rank)
    flagged = ranked[ranked["flagged"]]
    ranked = ranked.assign(files=np.where(ranked["flagged"], "⚠ " + ranked["files"], ranked["files"]))
    counts = st.columns(4)
    counts[0].metric("runs", len(ranked))
    counts[1].metric("datasets", ranked["dataset"].nunique())
    counts[2].metric("backbones", ranked["model"].nunique())
    counts[3].metric("flagged runs", len(flagged))
    if len(flagged):
        st.warning(
            f"{len(flagged)} run(s) have missing or corrupt files (⚠ in *files*); their stored metrics still show:\n"
            + "\n".join(f"- `{r.run_id}`: {r.files}" for r in flagged.itertuples(index=False))
        )
    if ranked["note"].str.len().any():
        st.info(
            "Tiny ImageNet is drawn from ImageNet: rows whose *note* says so used ImageNet-pretrained backbones, "
            "whose pretraining data overlaps the evaluation classes. Compare them with care."
        )
    config = table_config(ranked)
    grid = rounded(ranked[data.TABLE_COLUMNS], {column: spec.format for column, spec in data.DISPLAY_COLUMNS.items()})
    st.dataframe(grid, column_config=config, hide_index=True, placeholder="", height="content", key="leaderboard")
    st.caption(
        f"**Tier**: tier 1 holds the runs that {V.TIER_RULE}; tier 2 repeats this among the rest. A run without "
        "readable predictions has no tier."
        + ("" if expand or runs["seed_group"].isna().all() else
           " Seed groups are collapsed: their top-1 is the mean over the seeds (*Expand seed groups* lists each run).")
    )
    st.download_button(
        "Download CSV",
        partial(data.leaderboard_csv, ranked),  # built on click, not on every rerun
        file_name="leaderboard.csv",
        mime="text/csv",
        key="download_csv",
    )


def tradeoffs_view(runs: pd.DataFrame) -> None:
    st.header("Accuracy vs cost")
    left, right = st.columns(2)
    dataset = left.selectbox("Dataset", runs["dataset"].value_counts().index.tolist(), key="trade_dataset")
    metric = right.selectbox("Score", RANK_METRICS, format_func=metric_label, key="trade_metric")
    subset = runs[runs["dataset"] == dataset]
    if subset[metric].isna().all():
        st.info(f"No run on {dataset} has {metric_label(metric)} (AUROC exists for binary tasks only).")
    else:
        st.caption("Pareto frontier: the runs no other run beats with both a lower cost and a higher score.")
        for cost in (METRIC_SPECS[key].column for key in COSTS):
            st.plotly_chart(plots.tradeoff(subset, cost, metric), key=f"trade_{cost}")
    st.plotly_chart(plots.top1_bars(data.best_per_model(runs)), key="top1_bars")


def run_caption(row: pd.Series) -> None:
    st.caption(
        f"{row['model']} · pretrained on {row['pretrained_on']} (`{row['pretrained_tag']}`) · {row['strategy']} · "
        f"{row['dataset']} / {row['eval_split']} · files: {row['files']}"
    )
    if row["flagged"]:
        st.warning(f"Run folder problem: {row['files']}. The figures below come from the stored metrics.")
    if row["note"]:
        st.info(row["note"])


def details_view(runs: pd.DataFrame) -> None:
    st.header("Run details")
    row = pick_run(runs, "Run", "detail_run")
    run_caption(row)
    metrics = data.run_metrics(row)
    labels = data.class_labels(metrics)
    mode = st.radio("Confusion matrix", ["counts", "normalised"], horizontal=True, key="cm_mode")
    matrix = data.confusion(metrics, normalised=mode == "normalised")
    if matrix is None:
        st.info("This run's metrics have no confusion matrix.")
    else:
        if len(labels) > READABLE_CLASSES:
            most_confused_table(metrics)
        st.plotly_chart(plots.confusion_heatmap(matrix, labels, mode == "normalised"), key="confusion")
    per_class = data.per_class_frame(metrics)
    if per_class.empty:
        st.info("This run's metrics have no per-class scores.")
    else:
        st.plotly_chart(plots.per_class_bars(per_class), key="per_class")
    reliability_section(row, metrics)


def reliability_section(row: pd.Series, metrics: dict) -> None:
    predictions, problem = run_file(row, data.PREDICTIONS)
    if problem:
        st.info(f"No reliability diagram: {problem}")
        return
    st.plotly_chart(plots.reliability_diagram(data.reliability_curves(predictions, metrics)), key="reliability")
    st.caption(data.calibration_note(metrics))


def most_confused_table(metrics: dict) -> None:
    st.subheader("Most confused pairs")
    st.caption(
        f"{len(data.class_labels(metrics))} classes are too many to read in a matrix: the pairs the model mixes up "
        "most, with the share of the true class's images that went to the predicted class."
    )
    share = {"share of true class": number_column("share of true class", PERCENT)}
    pairs = rounded(data.most_confused(metrics), {"share of true class": PERCENT})
    st.dataframe(pairs, column_config=share, hide_index=True, key="most_confused")


def curves_view(runs: pd.DataFrame) -> None:
    st.header("Training curves")
    left, right = st.columns([1, 3])
    dataset = left.selectbox("Dataset", runs["dataset"].value_counts().index.tolist(), key="curve_dataset")
    run_ids = runs.loc[runs["dataset"] == dataset, "run_id"].tolist()
    # one widget per dataset: each remembers its own choice, and a new dataset starts with its first runs
    chosen = right.multiselect("Runs", run_ids, default=run_ids[:3], key=f"curve_runs_{dataset}")
    histories, soups = {}, {}
    for run_id in chosen:
        row = runs[runs["run_id"] == run_id].iloc[0]
        history, problem = run_file(row, data.HISTORY)
        if problem:
            st.warning(problem)
            continue
        histories[run_id] = history
        if stages := data.run_metrics(row).get("soup_of"):
            soups[run_id] = stages
    if not histories:
        st.info("Choose runs with a readable history.csv to overlay their curves.")
        return
    if all(len(history) == 1 for history in histories.values()):
        st.caption("One epoch per run: each curve is a single point.")
    for run_id, stages in soups.items():
        st.caption(f"{run_id} averages the weights of {len(stages)} runs ({', '.join(stages)}): trained by them, it "
                   "has no epochs of its own, and its one point (epoch 0) is its evaluation.")
    for title, (columns, tickformat) in data.CURVES.items():
        st.plotly_chart(plots.training_curves(histories, columns, title, tickformat), key=f"curves_{title}")


def compare_view(runs: pd.DataFrame) -> None:
    st.header("Compare two runs")
    if len(runs) < 2:
        st.info("Compare needs at least two runs among those shown (check the filters).")
        return
    left, right = st.columns(2)
    with left:
        a = pick_run(runs, "Run A", "compare_a", 0)
    with right:
        b = pick_run(runs, "Run B", "compare_b", 1)
    (preds_a, problem_a), (preds_b, problem_b) = (run_file(row, data.PREDICTIONS) for row in (a, b))
    paired = verdict_section(a, b, preds_a, preds_b, problem_a or problem_b)
    st.subheader("All figures")
    metrics_a, metrics_b = data.run_metrics(a), data.run_metrics(b)
    deltas = data.metric_deltas(metrics_a, metrics_b)
    headline = deltas[deltas["metric"].isin(HEADLINE)]
    columns = st.columns(max(len(headline), 1))
    for column, (metric, _, value, delta) in zip(columns, headline.itertuples(index=False, name=None), strict=False):
        spec = METRIC_SPECS[metric]
        change = data.signed(spec.number, delta)
        unchanged = change is not None and spec.number(abs(delta)) == spec.number(0.0)  # shown as 0: not coloured
        column.metric(
            f"{spec.heading} (B)",
            spec.number(value),
            change,
            delta_color="off" if unchanged else "inverse" if metric in data.LOWER_IS_BETTER else "normal",
        )
    if not data.same_task(metrics_a, metrics_b):
        st.caption(f"{metrics_a.get('dataset')} against {metrics_b.get('dataset')}: scores of two tasks are no "
                   "change of one, so only the costs show B − A.")
    if not data.same_hardware(metrics_a, metrics_b):
        st.caption(f"Timed on different machines or threads (A: {metrics_a.get('hardware', 'unknown')}; B: "
                   f"{metrics_b.get('hardware', 'unknown')}): latency, speed and training time show no B − A.")
    st.dataframe(data.formatted_deltas(deltas), hide_index=True, key="deltas")
    if (
        not data.comparable(metrics_a, metrics_b)
        or data.confusion(metrics_a) is None
        or data.confusion(metrics_b) is None
    ):
        st.info("Class-level comparison needs two runs on the same dataset and classes, with confusion matrices.")
        return
    diff = data.confusion(metrics_b, True) - data.confusion(metrics_a, True)
    st.plotly_chart(plots.confusion_difference(diff, data.class_labels(metrics_a)), key="confusion_diff")
    st.subheader("Classes where they disagree most")
    samples = (preds_a, preds_b) if paired else (None, None)  # counts over other samples would mislead
    st.dataframe(data.class_disagreement(metrics_a, metrics_b, *samples), hide_index=True, key="disagreement")


def verdict_section(
    a: pd.Series, b: pd.Series, preds_a: pd.DataFrame | None, preds_b: pd.DataFrame | None, problem: str
) -> bool:
    """Is the difference real? Both intervals; when paired, the difference's interval, McNemar's p, the verdict and
    the 2×2 table of paired outcomes, each cell opening its images in the error gallery. True when paired."""
    st.subheader("Is the difference real?")
    if problem:
        st.info(f"No sample-level verdict: {problem}")
        return False
    result = data.paired_comparison(preds_a, preds_b, a["run_id"], b["run_id"])
    columns = st.columns(4)
    for column, side, accuracy in ((columns[0], "A", result.a), (columns[1], "B", result.b)):
        right = f"{accuracy.correct:,} of {accuracy.total:,} right"
        column.metric(f"{side}: top-1", PERCENT.number(accuracy.top1), help=right)
        column.caption(f"95% CI {accuracy.interval} (Wilson)")
    if not result.pairing.paired:
        st.warning(f"Not comparable sample by sample: {result.pairing.reason} Each run's own interval is above.")
        return False
    # B − A, as every other change on this page (result.difference and its interval are A − B)
    low, high = -result.difference_interval.high, -result.difference_interval.low
    columns[2].metric("B − A", f"{-result.difference * 100:+.1f} points")
    columns[2].caption(f"95% CI {low * 100:+.1f} to {high * 100:+.1f} (paired bootstrap, "
                       f"{data.V.BOOTSTRAP_RESAMPLES:,} resamples)")  # fmt: skip
    columns[3].metric("McNemar p", data.V.format_p(result.p_value), help="exact test on the samples only one got right")
    (st.success if result.significant else st.info)(f"Verdict: {result.verdict}")
    st.markdown("**Paired outcomes** (samples); a cell opens its images in the error gallery")
    header, right_b, wrong_b = st.columns([1, 2, 2])
    header.markdown("&nbsp;")
    right_b.markdown("**B right**")
    wrong_b.markdown("**B wrong**")
    for label, cells in (("**A right**", ("both_right", "only_a")), ("**A wrong**", ("only_b", "both_wrong"))):
        row = st.columns([1, 2, 2])
        row[0].markdown(label)
        for column, outcome in zip(row[1:], cells, strict=True):
            count = getattr(result.outcomes, outcome)
            column.button(f"{data.V.OUTCOMES[outcome]}: {count:,}", key=f"cell_{outcome}", disabled=not count,
                          on_click=open_cell, args=(a["run_id"], b["run_id"], outcome), width="stretch")
    return True


def open_cell(run_a: str, run_b: str, outcome: str) -> None:
    """Button callback (runs before the page, so it may set widget state): the gallery of one 2×2 cell."""
    st.session_state["view"] = "Error gallery"
    st.session_state["gallery_run"] = run_a
    st.session_state["gallery_cell"] = (run_a, run_b, outcome)


def gallery_view(runs: pd.DataFrame) -> None:
    st.header("Error gallery")
    row = pick_run(runs, "Run", "gallery_run")
    run_caption(row)
    predictions, problem = run_file(row, data.PREDICTIONS)
    if problem:
        st.warning(problem)
        return
    folder = data_dir_setting(row)
    cell = st.session_state.get("gallery_cell")
    if cell and cell[0] == row["run_id"] and (runs["run_id"] == cell[1]).any():
        cell_gallery(row, folder, predictions, runs[runs["run_id"] == cell[1]].iloc[0], cell[2])
        return
    left, right = st.columns(2)
    labels = ["all classes", *sorted(predictions["true_label"].unique())]
    true_label = left.selectbox("True class", labels, key="gallery_class")
    limit = right.slider("Mistakes shown", 4, 48, 12, step=4, key="gallery_limit")
    mistakes = data.confident_mistakes(predictions, limit, None if true_label == labels[0] else true_label)
    if mistakes.empty:
        st.success("No mistakes to show: every prediction of this selection is right.")
        return
    st.caption("The most confident mistakes first: wrong and sure, often a label error or a genuinely hard image.")
    confidence = {"confidence": number_column("confidence", PERCENT)}
    st.dataframe(rounded(mistakes, {"confidence": PERCENT}), column_config=confidence, hide_index=True, key="mistakes")
    image_grid(row, folder, mistakes, lambda m: f"{m.true_label} → {m.pred_label} ({m.confidence:.0%})")


def cell_gallery(row: pd.Series, folder: Path | None, predictions: pd.DataFrame, other: pd.Series,
                 outcome: str) -> None:
    """The samples behind one cell of the compare view's 2×2 table (this run = A, `other` = B)."""
    other_predictions, problem = run_file(other, data.PREDICTIONS)
    if problem:
        st.warning(problem)
        return
    samples = data.outcome_samples(predictions, other_predictions, outcome)
    st.subheader(f"{data.V.OUTCOMES[outcome]}: {len(samples):,} samples")
    st.caption(f"A = `{row['run_id']}`, B = `{other['run_id']}`, from *Compare two runs*.")
    st.button("Back to the most confident mistakes", key="gallery_back",
              on_click=lambda: st.session_state.pop("gallery_cell", None))  # fmt: skip
    st.dataframe(samples, hide_index=True, key="cell_samples", column_config=CELL_COLUMNS)
    image_grid(row, folder, samples.head(GALLERY_LIMIT),
               lambda s: f"{s.true_label}: A {s.a_predicted}, B {s.b_predicted}")


GALLERY_LIMIT = 48  # images drawn at most; the table lists every sample
CELL_COLUMNS = {"a_predicted": st.column_config.TextColumn("A predicted"),
                "b_predicted": st.column_config.TextColumn("B predicted")}  # fmt: skip


def image_grid(row: pd.Series, folder: Path | None, samples: pd.DataFrame, caption: Callable[[tuple], str]) -> None:
    """The images of `samples` (sample_id column) found under the data directory `folder`, four to a row."""
    root = data.image_root(folder, samples["sample_id"].tolist())
    images = [(data.image_file(s.sample_id, root), s) for s in samples.itertuples(index=False)]
    reachable = [(path, s) for path, s in images if path is not None]
    missing = [s.sample_id for path, s in images if path is None]
    grid = st.columns(4)
    for index, (path, s) in enumerate(reachable):
        grid[index % 4].image(str(path), caption=caption(s))
    if missing:
        st.warning(f"{len(missing)} of {len(images)} images not found under `{folder or '—'}`: set the data "
                   f"directory above to your copy of the {row['dataset']} images (the folder given to `--data-dir`, "
                   f"or the one it was unpacked into); e.g. `{missing[0]}` is looked for below it.")


def data_dir_setting(row: pd.Series) -> Path | None:
    """The gallery's visible "data directory" for the run's dataset: remembered per dataset beside the store, first
    filled with the run's own data_dir when that exists here (a run trained on this machine); else empty, naming
    the recorded one (a shipped run's `path/to/...` placeholder, another machine's folder)."""
    db, dataset = data.db_path(script_args()), row["dataset"]
    saved = data.saved_data_dirs(db).get(dataset)
    trained_on = data_dir(row["run_path"]) if row["run_path"] else None
    shown = saved or (str(trained_on) if trained_on and trained_on.is_dir() else "")
    folder = st.text_input(
        f"Data directory of {dataset}",
        value=shown,
        placeholder=f"your copy of {trained_on.name}" if trained_on else "the folder given to --data-dir",
        key=f"data_dir_{dataset}",
        help="The folder holding this dataset's images, as given to `--data-dir` when training. The sample ids of "
             "predictions.parquet are relative to it. Remembered for every run of this dataset.",
    ).strip()
    if folder != shown:  # the user's choice (an empty field forgets it)
        data.save_data_dir(db, dataset, folder)
    return Path(folder).expanduser() if folder else None


VIEWS: dict[str, Callable[[pd.DataFrame], None]] = {
    "Leaderboard": leaderboard_view,
    "Accuracy vs cost": tradeoffs_view,
    "Run details": details_view,
    "Training curves": curves_view,
    "Compare two runs": compare_view,
    "Error gallery": gallery_view,
}


def main() -> None:
    st.set_page_config(page_title="Backbone Arena", layout="wide")  # an emoji icon would import streamlit.emojis: 0.6 s
    db = data.db_path(script_args())
    store = open_store(db)
    st.sidebar.title("Backbone Arena")
    st.sidebar.caption(f"Store: `{db}`")
    view = st.sidebar.radio("View", list(VIEWS), key="view")
    table = load_table(str(db), data.store_signature(db))
    if ingest_panel(store, expanded=table.empty):
        table = load_table(str(db), data.store_signature(db))  # the new signature: new runs show at once
    if table.empty:
        st.title("Backbone Arena leaderboard")
        st.info(EMPTY_HELP.format(db=db))
        if st.button("Load the reference models", key="load_reference", type="primary"):
            store.ingest([REFERENCE_RUNS])
            st.rerun()  # the store's new signature: the table shows them at once
        return
    runs = sidebar_filters(table)
    if runs.empty:
        st.warning("No run matches the filters in the sidebar.")
        return
    VIEWS[view](runs)


main()
