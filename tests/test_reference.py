"""The reference models shipped in reference/: complete run folders whose fp16 weights are real, trained models."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import SAMPLE
from safetensors import safe_open

import runfolder as R
from benchmarks.archives import EVAL_ARCHIVES
from trainers.inference import Predictor

REPO = Path(__file__).resolve().parents[1]
REFERENCES = sorted(p.parent for p in (REPO / "reference").glob("*/metrics.json"))
EVAL_SAMPLES = Path(__file__).resolve().parent / "fixtures" / "eval_samples"
MACHINE_PATH = re.compile(r"(?<![\w.])(/tmp/|/work/|/home/|/root/|/Users/|[A-Z]:\\)")


def by_task() -> dict[str, list[Path]]:
    tasks: dict[str, list[Path]] = {}
    for run in REFERENCES:
        tasks.setdefault(R.read_metrics(run)["dataset"], []).append(run)
    return tasks


def test_every_task_has_a_field_of_contestants_scored_on_the_same_images():
    """At least three systems per task (one trained from scratch, a pretrained linear probe and a full fine-tune), at
    most two of them Lite0, all evaluated on the same samples, so any two pair up in `leaderboard compare`."""
    tasks = by_task()
    assert sorted(tasks) == sorted(EVAL_ARCHIVES)
    for task, runs in tasks.items():
        assert len(runs) >= 3, f"{task}: {[r.name for r in runs]}"
        lite0 = [r for r in runs if "lite0" in R.read_metrics(r)["model"]]
        assert len(lite0) <= 2, f"{task}: {[r.name for r in lite0]}"
        # the study's network from scratch, and the lecture's question: head only against full fine-tuning
        systems = {(m["pretrained_tag"] != R.NO_PRETRAINING, m["strategy"]) for m in map(R.read_metrics, runs)}
        assert systems >= {(False, "full"), (True, "linear-probe"), (True, "full")}, f"{task}: {systems}"
        ids = [pd.read_parquet(r / R.PREDICTIONS).sort_values("sample_id")[["sample_id", "true_label"]]
               .reset_index(drop=True) for r in runs]
        for run, other in zip(runs[1:], ids[1:], strict=True):
            pd.testing.assert_frame_equal(other, ids[0], obj=f"{run.name} against {runs[0].name}")


def test_reference_stays_light():
    size = sum(f.stat().st_size for f in (REPO / "reference").rglob("*") if f.is_file())
    assert size < 80e6, f"reference/ holds {size / 1e6:.1f} MB"


@pytest.mark.parametrize("run", REFERENCES, ids=[r.name for r in REFERENCES])
def test_reference_is_a_complete_fp16_run_folder(run):
    for name in (R.CONFIG, R.WEIGHTS, R.CARD, R.METRICS, R.HISTORY, R.TRAIN_CONFIG, R.PREDICTIONS):
        assert (run / name).is_file(), name
    assert not (run / R.CHECKPOINT).exists()  # optimizer state does not ship
    with safe_open(run / R.WEIGHTS, "pt") as weights:
        dtypes = {str(weights.get_slice(k).get_dtype()) for k in weights.keys()}  # noqa: SIM118 (not a dict)
    assert "F16" in dtypes and "F32" not in dtypes
    assert (run / R.WEIGHTS).stat().st_size < 10e6
    assert R.read_train_config(run)["name"] == run.name  # its config reproduces it under the same name
    metrics = R.read_metrics(run)
    assert len(pd.read_parquet(run / R.PREDICTIONS)) == sum(c["support"] for c in metrics["per_class"])
    card = (run / R.CARD).read_text()
    assert "model-index" in card and f"\n# {run.name}: " in card  # named after its own folder


@pytest.mark.parametrize("run", REFERENCES, ids=[r.name for r in REFERENCES])
def test_reference_holds_no_path_of_the_machine_that_packed_it(run):
    """Sample ids are relative to the dataset's data directory; train_config.yaml names a placeholder for it."""
    for name in (R.CARD, R.TRAIN_CONFIG, R.CONFIG, R.METRICS):
        assert not MACHINE_PATH.search((run / name).read_text()), name
    sample_ids = pd.read_parquet(run / R.PREDICTIONS).sample_id
    assert not sample_ids.map(lambda s: Path(s).is_absolute()).any()
    folder = EVAL_ARCHIVES[R.read_metrics(run)["dataset"]][1]
    assert R.read_train_config(run)["data_dir"] == f"path/to/{folder}"
    assert not sample_ids.str.startswith(f"{folder}/").any()  # relative to the dataset folder, not the one above


def test_tiny_imagenet_reference_speaks_class_names_and_keeps_wordnet_ids():
    run = REPO / "reference" / "tiny-imagenet-efficientnet_lite0"
    config = R.read_config(run)
    names, ids = config["label_names"], config[R.LABEL_IDS]
    assert names[:2] == ["goldfish", "European fire salamander"] and ids[:2] == ["n01443537", "n01629819"]
    assert len(set(names)) == len(set(ids)) == 200 and ids == sorted(ids)
    assert config["label_descriptions"]["goldfish"] == "goldfish, Carassius auratus"
    assert [c["label"] for c in R.read_metrics(run)["per_class"]] == names
    predictions = pd.read_parquet(run / R.PREDICTIONS)
    assert set(predictions.true_label) | set(predictions.pred_label) <= set(names)
    assert "goldfish" in (run / R.CARD).read_text()


@pytest.mark.parametrize("run", REFERENCES, ids=[r.name for r in REFERENCES])
def test_fp16_weights_reproduce_the_recorded_predictions(run, shared_data):
    """On real images of its evaluation split, the shipped model predicts what predictions.parquet recorded."""
    archive, folder = EVAL_ARCHIVES[R.read_metrics(run)["dataset"]]
    root = shared_data(archive) / folder
    recorded = pd.read_parquet(run / R.PREDICTIONS).groupby("true_label").head(8)  # every class
    predictor = Predictor.from_run(run)
    probs = predictor.predict([str(root / s) for s in recorded.sample_id]).probs
    got = pd.Series([predictor.labels[i] for i in probs.argmax(axis=1)], index=recorded.index)
    assert (got == recorded.pred_label).mean() >= 0.97


@pytest.mark.parametrize("run", REFERENCES, ids=[r.name for r in REFERENCES])
def test_fp16_weights_reproduce_the_recorded_predictions_on_the_shipped_samples(run):
    """The same check without the archives: a few of each task's validation images ship in tests/fixtures
    (`collect_eval_samples.py`), and on every one the run predicts its recorded label and confidence."""
    samples = EVAL_SAMPLES / R.read_metrics(run)["dataset"]
    sample_ids = sorted(p.relative_to(samples).as_posix() for p in samples.rglob("*") if p.is_file())
    assert len(sample_ids) >= 6
    recorded = pd.read_parquet(run / R.PREDICTIONS).set_index("sample_id").loc[sample_ids]
    predictor = Predictor.from_run(run)
    probs = predictor.predict([str(samples / s) for s in sample_ids]).probs
    assert [predictor.labels[i] for i in probs.argmax(axis=1)] == recorded.pred_label.tolist()
    assert probs.max(axis=1) == pytest.approx(recorded[R.CALIBRATED_CONFIDENCE].to_numpy(), abs=0.02)


def run_pack(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "reference" / "pack_run.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def pack(*args: str | Path) -> str:
    result = run_pack(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_pack_run_writes_the_reference_form_and_repacks_in_place(tiny_run, tmp_path):
    """A fresh pack (data dir from the run), then an earlier pack's ids (`cifar10/val/...`) rebased in place."""
    packed = tmp_path / "packed"
    assert re.search(r"fp16 agrees with the recorded predictions on (9[5-9]|100)\.\d% of 20 ", pack(tiny_run, packed))
    assert not (packed / R.CHECKPOINT).exists()
    with safe_open(packed / R.WEIGHTS, "pt") as weights:
        assert "F32" not in {str(weights.get_slice(k).get_dtype()) for k in weights.keys()}  # noqa: SIM118
    train_config = R.read_train_config(packed)
    assert (train_config["data_dir"], train_config["output"]) == ("path/to/cifar10", "runs")
    machine_paths = (str(SAMPLE), str(tiny_run.parent))  # its data dir and output folder
    for name in (R.CARD, R.TRAIN_CONFIG):
        assert not any(path in (packed / name).read_text() for path in machine_paths), name
    assert "\n# packed: " in (packed / R.CARD).read_text()  # the card names the folder, not its staging copy
    ids = pd.read_parquet(tiny_run / R.PREDICTIONS).sample_id
    assert pd.read_parquet(packed / R.PREDICTIONS).sample_id.equals(ids)

    recorded = pd.read_parquet(packed / R.PREDICTIONS)
    R.write_predictions(packed, recorded.assign(sample_id="cifar10/" + recorded.sample_id))
    pack(packed, packed, "--data-dir", SAMPLE)
    assert pd.read_parquet(packed / R.PREDICTIONS).sample_id.equals(ids)
    in_itself = subprocess.run([sys.executable, str(REPO / "reference" / "pack_run.py"), ".", ".", "--data-dir",
                                str(SAMPLE)], capture_output=True, text=True, timeout=600, cwd=packed)
    assert in_itself.returncode == 0, in_itself.stderr[-3000:]  # `.`: the folder the command runs in
    assert pd.read_parquet(packed / R.PREDICTIONS).sample_id.equals(ids)


def test_pack_run_refuses_an_unfinished_run_and_a_failed_pack_leaves_nothing(tiny_run, tmp_path):
    unfinished = tmp_path / "unfinished"
    shutil.copytree(tiny_run, unfinished)
    (unfinished / R.METRICS).unlink()  # a run still training, or killed: only its checkpoint and history so far
    result = run_pack(unfinished, tmp_path / "a")
    assert result.returncode != 0 and "not a finished run folder" in result.stderr
    elsewhere = tmp_path / "no-images"
    elsewhere.mkdir()
    result = run_pack(tiny_run, tmp_path / "b", "--data-dir", elsewhere)
    assert result.returncode != 0 and "no such image under --data-dir" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no-images", "unfinished"]  # no half-packed folder


def test_a_failed_in_place_pack_leaves_the_run_as_it_was(tiny_run, tmp_path):
    """The repack is assembled beside the folder: refused midway, it has not touched one byte of the run."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)

    def files() -> dict[Path, bytes]:
        return {path.relative_to(run): path.read_bytes() for path in run.rglob("*") if path.is_file()}

    before = files()
    elsewhere = tmp_path / "no-images"
    elsewhere.mkdir()
    result = run_pack(run, run, "--data-dir", elsewhere)
    assert result.returncode != 0 and "no such image under --data-dir" in result.stderr
    assert files() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no-images", "run"]
    result = run_pack(elsewhere, tmp_path / "packed")  # a folder that is no run: said so, not "give --data-dir"
    assert result.returncode != 0 and "not a finished run folder" in result.stderr


def test_pack_run_refuses_weights_that_do_not_reproduce_the_run(shared_data, tmp_path):
    """Packed against other images than the run was scored on (each sample id showing another sample's X-ray), the
    fp16 check fails: exit 1, and no half-checked folder is left."""
    run = REPO / "reference" / "chest-xray-3-xray_cnn1"
    archive, folder = EVAL_ARCHIVES[R.read_metrics(run)["dataset"]]
    root = shared_data(archive) / folder
    ids = pd.read_parquet(run / R.PREDICTIONS).sample_id.tolist()
    swapped = tmp_path / "swapped"
    for sample_id, other in zip(ids, ids[len(ids) // 2:] + ids[:len(ids) // 2], strict=True):
        (swapped / sample_id).parent.mkdir(parents=True, exist_ok=True)
        (swapped / sample_id).symlink_to(root / other)
    result = run_pack(run, tmp_path / "packed", "--data-dir", swapped)
    assert result.returncode != 0 and "fp16 weights predict the recorded label on only" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["swapped"]


def test_reproduction_tables_are_what_the_run_folders_say():
    result = subprocess.run([sys.executable, str(REPO / "reference" / "contest.py"), "--check"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr or result.stdout
    text = (REPO / "reference" / "README.md").read_text()
    for run in REFERENCES:
        assert f"reference/{run.name}/{R.TRAIN_CONFIG}" in text  # each run's command


def test_a_run_trained_on_from_another_runs_weights_names_where_that_run_writes_them():
    """`--weights` of a second stage (progressive resizing) becomes the first stage's default output path."""
    sys.path.insert(0, str(REPO / "reference"))
    from pack_run import portable_train_config

    config = {"data_dir": "/data/x/cifar10", "weights": "/scratch/runs/cifar10-stage1/model.safetensors", "lr": 3e-4}
    assert portable_train_config(config) == {"data_dir": "path/to/cifar10",
                                             "weights": "runs/cifar10-stage1/model.safetensors", "lr": 3e-4}


def test_a_distilled_run_names_where_its_teachers_write_their_runs():
    sys.path.insert(0, str(REPO / "reference"))
    from pack_run import portable_train_config

    config = {"teachers": "/scratch/runs/chest-a,/scratch/runs/chest-b", "distill_weight": 0.5}
    assert portable_train_config(config) == {"teachers": "runs/chest-a,runs/chest-b", "distill_weight": 0.5}


SECOND_STAGES = [run for run in REFERENCES if R.read_train_config(run).get("weights")]


@pytest.mark.parametrize("run", SECOND_STAGES, ids=lambda p: p.name)
def test_a_second_stage_ships_the_recipe_of_its_first_and_both_commands(run):
    sys.path.insert(0, str(REPO / "reference"))
    from contest import earlier_recipes, first_stage_recipes

    recipes = first_stage_recipes(run)  # the recipes named as the folders the weights come from, or an error
    weights = R.read_train_config(run)["weights"].split(",")
    assert len(recipes) == len(weights)
    assert weights == [f"runs/{Path(w).parent.name}/{R.WEIGHTS}" for w in weights]  # where the first stages write them
    # trained from those runs, not from loose copies of their weights: it carries on their pretraining
    assert not R.read_metrics(run)["pretrained_tag"].startswith("file:")
    text = (REPO / "reference" / "README.md").read_text()
    for recipe in earlier_recipes(run):  # the first stages' own first stages too, each before the runs it feeds
        stage_one = f"--config trainers/recipes/{recipe.name} "
        assert stage_one in text and text.index(stage_one) < text.index(f"--config reference/{run.name}/")


def test_a_distilled_stage_comes_after_the_recipes_of_its_teachers():
    """A shipped run built on a distilled one (the 3-class soup) lists each teacher's recipe before the student's."""
    sys.path.insert(0, str(REPO / "reference"))
    from contest import earlier_recipes, recipe_config, teacher_recipes

    students = 0
    for run in SECOND_STAGES:
        order = earlier_recipes(run)
        for recipe in order:
            teachers = teacher_recipes(recipe_config(recipe), recipe)
            students += bool(teachers)
            assert all(order.index(teacher) < order.index(recipe) for teacher in teachers)
    assert students  # the check above met at least one distilled stage
