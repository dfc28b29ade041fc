"""The Streamlit leaderboard (apps/dashboard.py): every view driven by AppTest against a store of real tiny runs.

The store holds real trainings (two CIFAR-10 strategies, a binary image folder trained from scratch), plus copies
of a real run whose files were damaged after recording, and one whose metrics name Tiny ImageNet (no tiny real
Tiny ImageNet training fits the time budget; the copy exercises the pretraining-overlap marking).
"""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.proto.Metric_pb2 import Metric
from streamlit.testing.v1 import AppTest

import runfolder as R
from apps import dashboard_data as data
from leaderboard.store import Store
from runfolder.metrics import METRIC_SPECS
from tests.conftest import SAMPLE, train_tiny

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "apps" / "dashboard.py")
TIMEOUT = 60  # a 2-core CI runner shared with other jobs


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory, tiny_run: Path) -> Path:
    """Real run folders plus damaged copies, all recorded in a store at runs_root/arena.db."""
    root = tmp_path_factory.mktemp("dashboard-runs")
    pets = root / "pets-data"
    for split in ("train", "val"):
        for label in ("cat", "dog"):
            shutil.copytree(SAMPLE / split / label, pets / split / label)
    runs = root / "runs"
    shutil.copytree(tiny_run, runs / tiny_run.name)
    train_tiny(runs, "--strategy", "linear-probe", name="cifar10-probe")
    train_tiny(runs, "--dataset", "folder", "--data-dir", str(pets), "--model", "resnet18", "--no-pretrained",
               name="pets-scratch")

    def copy(name: str) -> Path:
        return Path(shutil.copytree(tiny_run, runs / name, ignore=shutil.ignore_patterns("checkpoint")))

    tiny = copy("tiny-imagenet-relabelled")
    metrics = json.loads((tiny / data.METRICS).read_text())
    (tiny / data.METRICS).write_text(json.dumps(metrics | {"dataset": "tiny-imagenet"}))
    for name in ("broken-predictions", "missing-history", "corrupt-metrics", "deleted-folder"):
        copy(name)
    store = Store(root / "arena.db")
    assert not store.ingest([runs]).skipped
    # damage after recording: the store keeps the metrics, the files are gone or unreadable
    (runs / "broken-predictions" / data.PREDICTIONS).write_bytes(b"PAR1 truncated")
    (runs / "missing-history" / data.HISTORY).unlink()
    (runs / "corrupt-metrics" / data.METRICS).write_text('{"dataset": ')
    shutil.rmtree(runs / "deleted-folder")
    return root


@pytest.fixture
def app(runs_root: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("ARENA_DB", str(runs_root / "arena.db"))
    return AppTest.from_file(APP, default_timeout=TIMEOUT).run()


def show(at: AppTest, view: str) -> AppTest:
    at.sidebar.radio(key="view").set_value(view).run()
    assert not at.exception, at.exception
    return at


def table(at: AppTest, column: str = "best") -> pd.DataFrame:
    """The dataframe shown with `column` (read-only dataframes carry no key to find them by)."""
    return next(frame.value for frame in at.dataframe if column in frame.value.columns)


def grid(at: AppTest, column: str):
    """The st.dataframe element (with its column configuration) whose table has `column`."""
    return next(frame for frame in at.dataframe if column in frame.value.columns)


def charts(at: AppTest) -> dict[str, dict]:
    """Plotly figures shown, by their Streamlit key (the figure JSON is in the element's spec)."""
    return {
        element.proto.id.rsplit("-", 1)[-1]: json.loads(element.proto.spec) for element in at.get("plotly_chart")
    }


def matrix(trace: dict, key: str = "z") -> np.ndarray:
    """A heatmap's z (or a trace's x, y): plotly serialises numpy arrays as base64 typed arrays ({dtype, bdata,
    shape})."""
    z = trace[key]
    if isinstance(z, dict) and "shape" not in z:
        return np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"])
    if isinstance(z, dict):
        shape = tuple(int(n) for n in str(z["shape"]).split(","))
        return np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(shape)
    return np.asarray(z, dtype=float)


def texts(elements) -> str:
    return "\n".join(str(element.value) for element in elements)


# --- empty store, ingest button, cache invalidation ---------------------------------------------------------


def test_empty_store_explains_how_to_create_the_first_run(tmp_path, monkeypatch):
    monkeypatch.setenv("ARENA_DB", str(tmp_path / "empty.db"))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "python trainers/finetune.py" in texts(at.info)
    assert not at.dataframe
    assert at.button(key="ingest").label == "Ingest run folders"
    assert at.text_input(key="ingest_path").value == "runs/"


def test_empty_store_loads_the_shipped_reference_models(tmp_path, monkeypatch):
    """A fresh clone's dashboard shows real models after one click: the run folders in reference/."""
    shipped = sorted(p.parent.name for p in (REPO / "reference").glob("*/metrics.json"))
    assert len(shipped) >= 4
    monkeypatch.setenv("ARENA_DB", str(tmp_path / "fresh.db"))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.button(key="load_reference").click().run()
    assert not at.exception
    assert sorted(Store(tmp_path / "fresh.db").runs().run_id) == shipped
    assert len(table(at)) == len(shipped)
    for view in ("Run details", "Training curves", "Error gallery"):  # their images do not ship: no crash
        at.sidebar.radio(key="view").set_value(view).run()
        assert not at.exception, view


def test_ingest_button_records_local_run_folders_and_reports_skipped(runs_root, tmp_path, monkeypatch):
    monkeypatch.setenv("ARENA_DB", str(tmp_path / "fresh.db"))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.text_input(key="ingest_path").set_value(f"{runs_root / 'runs'}, {tmp_path / 'nowhere'}")
    at.button(key="ingest").click().run()
    assert not at.exception
    recorded = len(Store(tmp_path / "fresh.db").runs())
    assert recorded == 6  # corrupt-metrics is skipped (unreadable JSON), deleted-folder is gone
    assert f"Recorded {recorded} run(s)." in texts(at.success)
    assert "corrupt-metrics" in texts(at.warning) and "nowhere" in texts(at.warning)
    assert len(table(at)) == recorded


def test_new_runs_appear_without_restart(runs_root, tmp_path, monkeypatch):
    """The cached table is keyed on the store file's signature: recording a run invalidates it."""
    db = tmp_path / "growing.db"
    Store(db).record_run(runs_root / "runs" / "cifar10-probe")
    monkeypatch.setenv("ARENA_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert len(table(at)) == 1
    Store(db).record_run(runs_root / "runs" / "pets-scratch")
    at.run()
    assert sorted(table(at)["run_id"]) == ["cifar10-probe", "pets-scratch"]


def test_reruns_use_the_cached_table(app, monkeypatch):
    builds = []
    monkeypatch.setattr(data, "leaderboard_table", lambda runs: builds.append(1) or real_build(runs))
    for _ in range(3):
        app.run()
    assert len(builds) <= 1  # at most once: SQLite's checkpoint on close may move the file signature once


real_build = data.leaderboard_table


def test_unreadable_store_is_an_error_message_not_a_traceback(tmp_path, monkeypatch):
    db = tmp_path / "not-a-database.db"
    db.write_text("hello")
    monkeypatch.setenv("ARENA_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "Cannot open the leaderboard store" in texts(at.error)


# --- leaderboard view ------------------------------------------------------------------------------------------


def test_leaderboard_table_columns_marks_and_flags(app, runs_root):
    assert not app.exception
    assert list(table(app).columns) == data.TABLE_COLUMNS
    shown = table(app).set_index("run_id")
    assert len(shown) == 8
    assert list(shown["dataset"]) == sorted(shown["dataset"])  # each dataset's runs together,
    for _, rows in shown.groupby("dataset", sort=False):
        assert list(rows["top1"].dropna()) == sorted(rows["top1"].dropna(), reverse=True)  # ranked by top-1
    stored = Store(runs_root / "arena.db").runs()
    for dataset, rows in stored.groupby("dataset"):
        best = shown[shown["best"] == data.BEST_MARK]
        assert best[best["dataset"] == dataset]["top1"].item() == pytest.approx(rows["top1"].max(), abs=5e-4)
    assert shown.loc["pets-scratch", "pretrained_on"] == "none (random init)"
    assert 0 <= shown.loc["pets-scratch", "auroc"] <= 1 and pd.isna(shown.loc["cifar10-probe", "auroc"])
    assert shown.loc["cifar10-probe", "pretrained_on"] == "ImageNet-1k"
    assert shown.loc["tiny-imagenet-relabelled", "note"] == data.OVERLAP_NOTE
    assert shown.loc["cifar10-probe", "files"] == data.FILES_OK
    probe_wall_s = stored.set_index("run_id").loc["cifar10-probe", "wall_s"]
    assert shown.loc["cifar10-probe", "whole_wall_s_min"] == pytest.approx(probe_wall_s / 60)  # training time
    expected = {
        "broken-predictions": "⚠ corrupt predictions.parquet",
        "missing-history": "⚠ missing history.csv",
        "deleted-folder": "⚠ run folder missing",
        "corrupt-metrics": "⚠ corrupt metrics.json",
    }
    for run_id, flag in expected.items():
        assert shown.loc[run_id, "files"].startswith(flag), shown.loc[run_id, "files"]
    assert {m.label: m.value for m in app.metric}["flagged runs"] == "4"
    assert all(run_id in texts(app.warning) for run_id in expected)
    assert "Tiny ImageNet is drawn from ImageNet" in texts(app.info)


def test_csv_download(app, runs_root):
    assert app.get("download_button")[0].proto.label == "Download CSV"
    rows = data.mark_best(data.leaderboard_table(Store(runs_root / "arena.db").runs()))
    csv = pd.read_csv(io.StringIO(data.leaderboard_csv(rows)))
    assert list(csv.columns) == data.TABLE_COLUMNS + data.CSV_EXTRA_COLUMNS
    assert sorted(csv["run_id"]) == sorted(rows["run_id"]) and "metrics_json" not in csv


def test_leaderboard_grid_reads_cleanly(app):
    """Whole run ids (pinned, as wide as the longest), one percent precision, empty cells for missing values."""
    leaderboard = grid(app, "best")
    config = json.loads(leaderboard.proto.columns)
    longest = max(len(run_id) for run_id in leaderboard.value["run_id"])
    run_id = config["run_id"]
    assert run_id["pinned"] and run_id["width"] >= 8 * longest
    assert leaderboard.proto.placeholder == ""  # AUROC of the multiclass runs: blank, not "None"
    assert pd.isna(leaderboard.value.set_index("run_id").loc["cifar10-probe", "auroc"])
    for column in ("top1", "top5", "macro_f1"):  # Streamlit: (decimals of step) − 2 decimals of a percent → 94.4%
        assert config[column]["type_config"] == {"type": "number", "format": "percent", "step": 0.001}
        # Streamlit cuts the decimals past `step` off: the values come rounded (92.76% shows 92.8%, not 92.7%)
        values = leaderboard.value[column].astype(float)
        assert np.allclose(values, values.round(3), rtol=0, atol=1e-12, equal_nan=True), values.tolist()
    assert config["latency_ms"]["type_config"]["format"] == "%.3g"  # as `leaderboard show`: 756, 13.4


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("f_dataset", ["folder"], {"pets-scratch"}),
        ("f_family", ["resnet"], {"pets-scratch"}),
        ("f_strategy", ["linear-probe"], {"cifar10-probe"}),
        ("f_pretrained", "from scratch", {"pets-scratch"}),
    ],
)
def test_filters(app, key, value, expected):
    before = set(table(app)["run_id"])
    widget = app.sidebar.radio(key=key) if key == "f_pretrained" else app.sidebar.multiselect(key=key)
    widget.set_value(value).run()
    assert not app.exception
    assert set(table(app)["run_id"]) == expected and expected < before


def test_rank_by_macro_f1_marks_best_by_it(app):
    app.selectbox(key="rank_by").set_value("macro_f1").run()
    shown = table(app)
    for _, rows in shown.groupby("dataset"):  # within each dataset
        assert list(rows["macro_f1"]) == sorted(rows["macro_f1"], reverse=True)
    cifar = shown[shown["dataset"] == "cifar10"]
    assert cifar.loc[cifar["best"] == data.BEST_MARK, "macro_f1"].item() == cifar["macro_f1"].max()


def test_filters_that_match_nothing_say_so(app):
    app.sidebar.multiselect(key="f_dataset").set_value(["folder"]).run()
    app.sidebar.radio(key="f_pretrained").set_value("pretrained").run()
    assert not app.exception
    assert "No run matches the filters" in texts(app.warning)


# --- plots -----------------------------------------------------------------------------------------------------


def test_accuracy_vs_cost_with_pareto_frontier_and_grouped_bars(app):
    show(app, "Accuracy vs cost")
    assert app.selectbox(key="trade_dataset").value == "cifar10"  # the dataset with most runs
    figures = charts(app)
    assert set(figures) == {"trade_params_m", "trade_macs_g", "trade_latency_ms", "top1_bars"}
    for key in ("trade_params_m", "trade_macs_g", "trade_latency_ms"):
        names = [trace.get("name") for trace in figures[key]["data"]]
        assert "Pareto frontier" in names
        points = [trace for trace in figures[key]["data"] if trace.get("name") != "Pareto frontier"]
        labels = [text for trace in points for text in trace["text"]]  # short model names, blank where crowded
        assert "efficientnet_lite0" in labels and set(labels) <= {"efficientnet_lite0", ""}
        scores = np.concatenate([matrix(trace, "y") for trace in points])
        low, high = figures[key]["layout"]["yaxis"]["range"]  # the scores' own span, not the whole 0-100%
        assert 0 <= low < min(scores) and max(scores) < high <= 1.08 and high - low < 1
        axis = figures[key]["layout"]["xaxis"]
        assert axis["type"] == "log"
        for value, text in zip(axis.get("tickvals", []), axis.get("ticktext", []), strict=True):
            assert float(text.replace(",", "")) == pytest.approx(value)  # every tick labelled in full: no bare "2"
    bars = figures["top1_bars"]["data"]
    assert {trace["type"] for trace in bars} == {"bar"} and figures["top1_bars"]["layout"]["barmode"] == "group"
    app.selectbox(key="trade_metric").set_value("auroc").run()
    assert "AUROC exists for binary tasks only" in texts(app.info)


def test_labels_of_one_model_at_one_cost_do_not_cover_each_other():
    """A linear probe and a full fine-tune of one backbone share a cost and nearly a score: the second label goes
    below its point, a third that has room nowhere is left to the hover text, a distant point keeps its own."""
    from apps.dashboard_plots import label_positions

    cost, score = pd.Series([3.63, 3.63, 3.63, 0.02]), pd.Series([0.648, 0.646, 0.642, 0.032])
    names = pd.Series(["efficientnet_lite0"] * 3 + ["et_net"])
    assert list(label_positions(cost, score, names)) == ["top center", "bottom center", None, "top center"]
    apart = pd.Series([0.90, 0.60, 0.30, 0.032])  # the same costs, scores far apart: every label on top
    assert list(label_positions(cost, apart, names)) == ["top center"] * 4


def test_run_details_confusion_matrix_toggle_and_per_class_bars(app):
    show(app, "Run details")
    app.selectbox(key="detail_run").set_value("cifar10-probe").run()
    heatmap = charts(app)["confusion"]["data"][0]
    assert heatmap["x"][:3] == ["airplane", "automobile", "bird"]
    assert matrix(heatmap).sum() == 20  # --max-eval-samples 20
    app.radio(key="cm_mode").set_value("normalised").run()
    heatmap = charts(app)["confusion"]["data"][0]
    assert np.allclose(matrix(heatmap).sum(axis=1), 1)
    scores = {trace["name"] for trace in charts(app)["per_class"]["data"]}
    assert scores == {"precision", "recall", "f1"}


def test_run_details_of_a_ten_class_run_have_no_most_confused_table(app):
    show(app, "Run details")
    app.selectbox(key="detail_run").set_value("cifar10-probe").run()
    assert not [frame for frame in app.dataframe if "share of true class" in frame.value.columns]
    assert charts(app)["confusion"]["data"][0].get("texttemplate")  # 10 classes: counts in the cells


def test_most_confused_pairs_of_the_reference_tiny_imagenet_run(tmp_path, monkeypatch):
    """200 classes: a most-confused table computed from the real run's matrix, and a heatmap without cell text."""
    run = next(p.parent for p in (REPO / "reference").glob("*/metrics.json") if "tiny-imagenet" in p.parent.name)
    metrics = json.loads((run / data.METRICS).read_text())
    counts = np.asarray(metrics["confusion_matrix"])
    assert len(counts) > 20
    monkeypatch.setenv("ARENA_DB", str(tmp_path / "tiny.db"))
    Store(tmp_path / "tiny.db").record_run(run)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    show(at, "Run details")
    pairs = grid(at, "share of true class").value
    assert list(pairs.columns) == ["true", "predicted", "count", "share of true class"]
    off_diagonal = counts - np.diag(np.diag(counts))
    assert pairs["count"].iloc[0] == off_diagonal.max()
    assert list(pairs["count"]) == sorted(pairs["count"], reverse=True)
    labels = data.class_labels(metrics)
    for pair in pairs.itertuples(index=False):
        true, predicted = labels.index(pair.true), labels.index(pair.predicted)
        assert true != predicted and counts[true, predicted] == pair[2]
        assert pair[3] == pytest.approx(counts[true, predicted] / counts[true].sum())
    config = json.loads(grid(at, "share of true class").proto.columns)
    assert config["share of true class"]["type_config"]["format"] == "percent"
    heatmap = charts(at)["confusion"]
    assert not heatmap["data"][0].get("texttemplate")  # no 40,000 numbers drawn over each other
    assert heatmap["layout"]["xaxis"]["showticklabels"] is False


def test_run_details_of_a_corrupt_run_show_stored_metrics_and_flag(app):
    show(app, "Run details")
    app.selectbox(key="detail_run").set_value("corrupt-metrics").run()
    assert not app.exception
    assert "corrupt metrics.json" in texts(app.warning)
    assert {"confusion", "per_class"} <= set(charts(app))


def test_training_curves_overlay_runs_and_report_a_missing_history(app):
    show(app, "Training curves")
    assert app.selectbox(key="curve_dataset").value == "cifar10"  # the dataset with most runs
    assert "pets-scratch" not in app.multiselect(key="curve_runs_cifar10").options  # one dataset at a time
    app.multiselect(key="curve_runs_cifar10").set_value(["cifar10-tiny", "cifar10-probe", "missing-history"]).run()
    assert not app.exception
    assert "missing-history" in texts(app.warning)
    figures = charts(app)
    assert set(figures) == {"curves_Loss", "curves_Accuracy", "curves_Learning rate"}
    names = {trace["name"] for trace in figures["curves_Loss"]["data"]}
    assert names == {f"{run} · {split}" for run in ("cifar10-tiny", "cifar10-probe") for split in ("train", "val")}
    assert "cifar10-tiny · val top-5" in {trace["name"] for trace in figures["curves_Accuracy"]["data"]}
    app.selectbox(key="curve_dataset").set_value("folder").run()
    assert app.multiselect(key="curve_runs_folder").value == ["pets-scratch"]
    accuracy = {trace["name"] for trace in charts(app)["curves_Accuracy"]["data"]}
    assert accuracy == {"pets-scratch · train", "pets-scratch · val"}  # two classes: no top-5 line or legend


def test_training_curves_have_whole_epochs_and_a_readable_single_epoch(app, runs_root):
    show(app, "Training curves")
    app.multiselect(key="curve_runs_cifar10").set_value(["cifar10-tiny"]).run()
    history = data.read_history(runs_root / "runs" / "cifar10-tiny")
    figures = charts(app)
    for figure in figures.values():
        axis = figure["layout"]["xaxis"]
        assert axis["tickmode"] == "linear" and float(axis["dtick"]).is_integer()
    lr = figures["curves_Learning rate"]["layout"]["yaxis"]
    if len(history) == 1:  # the tiny run trains one epoch: one lr value, an axis around it (not −1…1)
        low, high = lr["range"]
        assert 0 <= low < history["lr"].iloc[0] < high <= 2 * history["lr"].iloc[0]
        assert "One epoch per run" in texts(app.caption)


def test_compare_two_runs_of_one_dataset(app, runs_root):
    show(app, "Compare two runs")
    app.selectbox(key="compare_a").set_value("cifar10-tiny").run()
    app.selectbox(key="compare_b").set_value("cifar10-probe").run()
    assert not app.exception
    deltas = table(app, "B − A").set_index("metric")  # as shown: one format per metric, with its unit
    a, b = (R.read_metrics(runs_root / "runs" / name) for name in ("cifar10-tiny", "cifar10-probe"))
    assert deltas.loc["top-1", "A"] == f"{a['top1']:.1%}" and deltas.loc["top-1", "B"] == f"{b['top1']:.1%}"
    assert deltas.loc["top-1", "B − A"] == f"{b['top1'] - a['top1']:+.1%}"
    training_time = METRIC_SPECS["whole_wall_s"].text(a["wall_s"])  # built on no other run: its own wall time
    assert deltas.loc["training time", "A"] == training_time and training_time.endswith(" min")
    cards = {m.label: m.proto for m in app.metric}
    assert {"top-1 (B)", "params (M) (B)", "latency (ms) (B)"} <= set(cards)
    assert a["params"] == b["params"] and cards["params (M) (B)"].color == Metric.MetricColor.GRAY  # +0 is no loss
    diff = matrix(charts(app)["confusion_diff"]["data"][0])
    assert np.allclose(diff.sum(axis=1), 0)  # rows of two normalised matrices both sum to 1
    classes = table(app, "samples disagreeing")
    assert {"class", "Δ recall", "samples disagreeing", "only A right", "only B right"} <= set(classes.columns)
    assert list(classes["samples disagreeing"]) == sorted(classes["samples disagreeing"], reverse=True)


def test_a_soups_training_time_counts_the_runs_it_averages():
    """A soup's own wall time is its evaluation; Compare's "training time" adds every run in its lineage."""
    row = pd.Series({"metrics_json": json.dumps({"wall_s": 40.0, R.LINEAGE: {"a": 3000.0, "b": 1000.0}})})
    assert data.run_metrics(row)["whole_wall_s"] == 4040.0
    assert METRIC_SPECS["whole_wall_s"].text(4040.0) == "67.3 min"


def test_compare_across_datasets_explains_why_no_class_view(app):
    show(app, "Compare two runs")
    app.selectbox(key="compare_a").set_value("cifar10-tiny").run()
    app.selectbox(key="compare_b").set_value("pets-scratch").run()
    assert not app.exception
    assert "same dataset and classes" in texts(app.info)
    assert "confusion_diff" not in charts(app)
    deltas = table(app, "B − A").set_index("metric")  # scores of two tasks: no change; costs: one
    assert deltas.loc["top-1", "B − A"] == "—" and deltas.loc["params", "B − A"] != "—"
    cards = {m.label: m for m in app.metric}
    assert cards["top-1 (B)"].proto.delta == "" and cards["params (M) (B)"].proto.delta


def test_error_gallery_shows_confident_mistakes_with_images(app):
    show(app, "Error gallery")
    app.selectbox(key="gallery_run").set_value("cifar10-tiny").run()
    mistakes = table(app, "sample_id")
    assert len(mistakes) and (mistakes["true_label"] != mistakes["pred_label"]).all()
    assert list(mistakes["confidence"]) == sorted(mistakes["confidence"], reverse=True)
    assert len(app.image) == len(mistakes)  # sample ids are paths to the in-repo sample images
    app.selectbox(key="gallery_class").set_value("cat").run()
    assert set(table(app, "sample_id")["true_label"]) <= {"cat"}


def test_data_directories_are_remembered_per_dataset_beside_the_store(tmp_path):
    db = tmp_path / "arena.db"
    assert data.saved_data_dirs(db) == {}
    data.save_data_dir(db, "chest-xray", "/data/chest_xray")
    data.save_data_dir(db, "fer2013", "/data/fer2013")
    data.save_data_dir(db, "fer2013", "")  # an emptied field forgets
    assert data.saved_data_dirs(db) == {"chest-xray": "/data/chest_xray"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arena.data-dirs.json"]  # no temp file left behind
    data.data_dirs_path(db).write_text("{not json")
    assert data.saved_data_dirs(db) == {}  # unreadable: asked again, no crash


def test_error_gallery_finds_a_moved_dataset_once_its_data_directory_is_set(tiny_run, tmp_path, monkeypatch):
    """A run trained elsewhere (here: its train_config names a placeholder, as the shipped runs do): no images
    until the user points the gallery at the dataset; the choice is remembered for the next visit."""
    run = Path(shutil.copytree(tiny_run, tmp_path / "runs" / "moved", ignore=shutil.ignore_patterns("checkpoint")))
    config = R.read_train_config(run)
    R.write_train_config(run, config | {"data_dir": "path/to/cifar10"})
    db = tmp_path / "arena.db"
    Store(db).record_run(run)
    monkeypatch.setenv("ARENA_DB", str(db))
    at = show(AppTest.from_file(APP, default_timeout=TIMEOUT).run(), "Error gallery")
    field = at.text_input(key="data_dir_cifar10")
    assert field.value == "" and field.placeholder == "your copy of cifar10"  # not a path that is nowhere here
    first_missing = table(at, "sample_id")["sample_id"].iloc[0]
    assert len(at.image) == 0 and "not found under `—`: set the data directory" in texts(at.warning)
    assert f"e.g. `{first_missing}` is looked for" in texts(at.warning)
    at.text_input(key="data_dir_cifar10").set_value(str(SAMPLE.parent)).run()  # the folder above works too
    assert not at.exception and len(at.image) == len(table(at, "sample_id")) > 0
    assert data.saved_data_dirs(db) == {"cifar10": str(SAMPLE.parent)}
    again = show(AppTest.from_file(APP, default_timeout=TIMEOUT).run(), "Error gallery")
    assert again.text_input(key="data_dir_cifar10").value == str(SAMPLE.parent) and len(again.image) > 0


def test_error_gallery_of_a_run_with_corrupt_predictions(app):
    show(app, "Error gallery")
    app.selectbox(key="gallery_run").set_value("broken-predictions").run()
    assert not app.exception
    assert "cannot read" in texts(app.warning)


# --- data rules ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "expected"),
    [("resnet50", "resnet"), ("resnet152.a1h_in1k", "resnet"), ("vgg16", "vgg"), ("inception_v3", "inception"),
     ("tf_efficientnet_lite0", "efficientnet"), ("efficientnetv2_s", "efficientnet"), ("mobilenetv3_large_100",
     "mobilenet"), ("vit_base_patch16_224", "vit"), ("convnext_tiny", "convnext")],
)  # fmt: skip
def test_family(model, expected):
    assert data.family(model) == expected


@pytest.mark.parametrize(
    ("tag", "expected"),
    [("resnet50.a1_in1k", "ImageNet-1k"), ("vgg16.tv_in1k", "ImageNet-1k"), ("none", "none (random init)"),
     ("vit_base_patch16_224.augreg_in21k_ft_in1k", "ImageNet-21k → ImageNet-1k"), (None, "unknown"),
     ("file:resnet50.pth", "local file resnet50.pth"), ("vit_base_patch16_clip_224.openai", "openai")],
)  # fmt: skip
def test_pretrained_on(tag, expected):
    assert data.pretrained_on(tag) == expected


def test_pretraining_note_only_marks_tiny_imagenet():
    assert data.pretraining_note("tiny-imagenet", "resnet50.a1_in1k") == data.OVERLAP_NOTE
    assert data.pretraining_note("hf:zh-plus/tiny-imagenet", "vgg16.tv_in1k") == data.OVERLAP_NOTE
    assert data.pretraining_note("tiny-imagenet", "none") == ""
    assert data.pretraining_note("tiny-imagenet", "file:x.pth") == data.UNKNOWN_PRETRAINING_NOTE
    assert data.pretraining_note("cifar10", "resnet50.a1_in1k") == ""


def test_pareto_front_keeps_runs_nothing_beats():
    runs = pd.DataFrame({"cost": [1, 2, 2, 3, 4, 5], "top1": [0.5, 0.4, 0.7, 0.7, 0.9, 0.8]})
    assert data.pareto_front(runs, "cost", "top1")["cost"].tolist() == [1, 2, 4]


def test_db_path_from_script_args_env_or_default(tmp_path, monkeypatch):
    monkeypatch.setenv("ARENA_DB", str(tmp_path / "env.db"))
    assert data.db_path(["--db", str(tmp_path / "arg.db")]) == tmp_path / "arg.db"
    assert data.db_path([]) == tmp_path / "env.db"
    monkeypatch.delenv("ARENA_DB")
    assert data.db_path([]).name == "leaderboard.db"


def test_store_signature_changes_when_a_run_is_recorded(runs_root, tmp_path):
    store = Store(tmp_path / "sig.db")
    before = data.store_signature(store.path)
    store.record_run(runs_root / "runs" / "cifar10-probe")
    assert data.store_signature(store.path) != before


def test_dashboard_data_does_not_import_torch():
    """The run-folder names come from runfolder, which must stay light for the 3 s page budget."""
    import subprocess
    import sys

    code = "import sys, apps.dashboard_data; print('torch' in sys.modules)"
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo)
    assert out.stdout.strip() == "False"


def test_the_curves_are_history_columns_the_trainer_writes(tiny_run):
    """history.csv's columns are runfolder.EpochRow's fields, and every curve the dashboard draws is one of them."""
    from dataclasses import fields

    columns = [f.name for f in fields(R.EpochRow)]
    assert list(R.read_history(tiny_run).columns) == columns
    assert {column for curves, _ in data.CURVES.values() for column in curves} <= set(columns)


def test_times_of_two_machines_and_scores_of_two_tasks_get_no_change():
    a = {"dataset": "cifar10", "hardware": "AMD EPYC CPU (x86_64, 1 thread)", "top1": 0.9, "latency_ms": 15.0,
         "params": 3e6}
    b = a | {"hardware": "AMD EPYC CPU (x86_64, 2 threads)", "top1": 0.8, "latency_ms": 70.0}
    deltas = data.metric_deltas(a, b).set_index("metric")["delta (B − A)"]
    assert deltas["top1"] == pytest.approx(-0.1) and np.isnan(deltas["latency_ms"]) and deltas["params"] == 0
    across = data.metric_deltas(a, a | {"dataset": "fer2013"}).set_index("metric")["delta (B − A)"]
    assert np.isnan(across["top1"]) and across["latency_ms"] == 0
