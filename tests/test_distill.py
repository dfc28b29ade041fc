"""Knowledge distillation (`--teachers`): the teachers' probabilities line up with the training images, and a
student trains on them."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from conftest import SAMPLE, train_tiny

import runfolder as R
from trainers.data import DataError, Sample
from trainers.distill import distillation_targets, load_teachers, local_teachers, teacher_probabilities
from trainers.inference import ImageError

CPU = torch.device("cpu")


def run_samples(run) -> tuple[list[Sample], pd.DataFrame]:
    predictions = pd.read_parquet(run / R.PREDICTIONS)
    classes = R.read_config(run)["label_names"]
    samples = [Sample(str(SAMPLE / sid), classes.index(label), sid)
               for sid, label in zip(predictions["sample_id"], predictions["true_label"], strict=True)]
    return samples, predictions


def test_teacher_rows_are_its_predictions_of_those_images(tiny_run):
    """Row i is the teacher's calibrated probabilities for sample i: on the teacher's own evaluation images they
    reproduce its predictions.parquet, image by image, in a shuffled order."""
    samples, predictions = run_samples(tiny_run)
    order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(0)).tolist()
    classes = R.read_config(tiny_run)["label_names"]
    probs = teacher_probabilities(load_teachers(str(tiny_run), classes, CPU), [samples[i] for i in order])
    expected = predictions.iloc[order]
    assert [classes[i] for i in probs.argmax(1).tolist()] == expected["pred_label"].tolist()
    assert probs.max(1).values.numpy() == pytest.approx(expected[R.CALIBRATED_CONFIDENCE].to_numpy(), abs=1e-3)
    assert probs.sum(1).numpy() == pytest.approx(1.0, abs=1e-5)


def test_a_teacher_of_other_classes_is_refused(tiny_run):
    classes = R.read_config(tiny_run)["label_names"]
    with pytest.raises(DataError, match="are not this dataset's"):
        load_teachers(str(tiny_run), classes[::-1], CPU)


def test_a_hub_teacher_out_of_reach_is_named_and_leaves_no_run_folder(tmp_path, monkeypatch):
    """The suite runs with HF_HUB_OFFLINE=1 (conftest) and an empty Hub cache: a clear error, not a traceback, and
    the teachers load before the run folder is made."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(SystemExit, match="--teachers hf-hub:org/absent: could not fetch it from the Hugging Face Hub"):
        train_tiny(tmp_path / "runs", "--teachers", "hf-hub:org/absent", name="student")
    assert not (tmp_path / "runs").exists()


def test_targets_mix_the_smoothed_label_and_the_teachers():
    teachers = torch.tensor([[0.2, 0.8], [0.6, 0.4]])
    targets = distillation_targets(torch.tensor([0, 0]), teachers, weight=0.5, label_smoothing=0.1)
    assert targets.flatten().tolist() == pytest.approx([0.575, 0.425, 0.775, 0.225])


def test_a_student_trains_on_its_teachers(tiny_run, tmp_path):
    run = train_tiny(tmp_path, "--teachers", str(tiny_run), "--distill-weight", "0.7", "--class-weights")
    assert R.read_train_config(run)["teachers"] == str(tiny_run)
    metrics = R.read_metrics(run)
    assert metrics["distilled_from"] == [tiny_run.name] and metrics["distill_weight"] == 0.7
    assert metrics["teachers_wall_s"] == R.read_metrics(tiny_run)["wall_s"]
    assert metrics["lineage"] == {tiny_run.name: R.read_metrics(tiny_run)["wall_s"]}
    assert f"distilled** (Hinton et al., 2015) from 1 finished run: `{tiny_run.name}`" in (run / R.CARD).read_text()


def test_teachers_and_mixup_are_refused(tiny_run, tmp_path):
    with pytest.raises(SystemExit, match="no --mixup"):
        train_tiny(tmp_path, "--teachers", str(tiny_run), "--mixup", "0.2")
    assert not (tmp_path / "tiny").exists()  # refused before anything was written


def test_teachers_of_one_preprocessing_share_each_decoded_image(tiny_run):
    """Two teachers with the same preprocessing form one group (the images are decoded once for both); their
    average is each one's probabilities when they are the same run."""
    from trainers.distill import same_preprocessing, teacher

    samples, _ = run_samples(tiny_run)
    classes = R.read_config(tiny_run)["label_names"]
    assert [len(g) for g in same_preprocessing([teacher(str(tiny_run), classes, torch.device("cpu"))] * 2)] == [2]
    once = teacher_probabilities(load_teachers(str(tiny_run), classes, CPU), samples)
    twice = teacher_probabilities(load_teachers(f"{tiny_run},{tiny_run}", classes, CPU), samples)
    assert torch.allclose(once, twice, atol=1e-6)


def test_an_unreadable_image_fails_the_teachers_unless_skipped(tiny_run, tmp_path):
    """--skip-corrupt reaches the teachers' pass: the unreadable image's row stays zero (training skips it too),
    the others are what the teacher gives them alone."""
    samples, _ = run_samples(tiny_run)
    classes = R.read_config(tiny_run)["label_names"]
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"not a jpeg")
    mixed = [samples[0], Sample(str(corrupt), 0, "corrupt.jpg"), samples[1]]
    teachers = load_teachers(str(tiny_run), classes, CPU)
    with pytest.raises(ImageError):
        teacher_probabilities(teachers, mixed)
    probs = teacher_probabilities(teachers, mixed, skip_corrupt=True)
    alone = teacher_probabilities(teachers, [samples[0], samples[1]])
    assert not probs[1].any() and torch.allclose(probs[[0, 2]], alone, atol=1e-6)


def test_local_dir_teachers_count_in_the_lineage(tiny_run):
    assert local_teachers(f"{R.LOCAL_PREFIX}{tiny_run},hf-hub:org/elsewhere") == [tiny_run]
