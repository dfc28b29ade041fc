"""Knowledge distillation of finished runs into the one being trained (`--teachers RUN,RUN,...`).

The teachers' averaged, calibrated probabilities on every training image become part of that image's target
(Hinton et al., 2015): `(1 - w) * label + w * teachers`, with `w` = `--distill-weight`. An ensemble of runs that err
differently scores above each of them, and its soft targets carry that into a single network of the student's cost.

The teachers see each image once, un-augmented, as they were evaluated, before training starts; timm's
`LogitDistillationTask` runs its teacher on every augmented batch instead, which with an ensemble of teachers would
cost each of them a forward pass per step. Here the teachers cost one pass over the training split in all.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

import runfolder as R
from trainers.data import DataError, Sample
from trainers.inference import ImageError, Predictor
from trainers.models import ModelError, joined_parts, one_line
from trainers.progress import progress

TEACHER_BATCH = 64  # images per teacher forward pass


def teacher_runs(teachers: str) -> list[str]:
    """`--teachers`: run folders (or hf-hub: ids) joined by commas, as `--weights` joins a soup's runs."""
    return [run for run in joined_parts(teachers) if run]


def load_teachers(teachers: str, classes: list[str], device: torch.device) -> list[Predictor]:
    """`--teachers` as predictors of `classes`, loaded before the run folder is made: a teacher that cannot be
    had (unreachable, other classes) leaves nothing behind."""
    return [teacher(run, classes, device) for run in teacher_runs(teachers)]


def teacher_probabilities(predictors: list[Predictor], samples: Sequence[Sample],
                          skip_corrupt: bool = False) -> torch.Tensor:
    """The teachers' averaged probabilities, one row per training sample in `samples` order (float32, CPU). With
    `skip_corrupt` (--skip-corrupt), an image that cannot be read keeps a row of zeros: training skips it too."""
    total = torch.zeros(len(samples), len(predictors[0].labels))
    for group in same_preprocessing(predictors):  # each image decoded once per preprocessing, not per teacher
        first = group[0]
        desc = f"{len(group)} teacher(s) at {first.input_size[-1]} px"
        for start in progress(range(0, len(samples), TEACHER_BATCH), desc, unit="batch"):
            rows, images = readable(first, samples[start:start + TEACHER_BATCH], skip_corrupt)
            for predictor in group:
                if rows:
                    total[[start + row for row in rows]] += predictor.predict_tensor(torch.stack(images))
    return total / len(predictors)


def readable(predictor: Predictor, samples: Sequence[Sample],
             skip_corrupt: bool) -> tuple[list[int], list[torch.Tensor]]:
    """The positions of the samples that decode, and their preprocessed images; unreadable ones raise
    `ImageError` unless `skip_corrupt`."""
    rows, images = [], []
    for row, sample in enumerate(samples):
        try:
            images.append(predictor.preprocess(sample.source))
        except ImageError:
            if not skip_corrupt:
                raise
            continue
        rows.append(row)
    return rows, images


def teacher(run: str, classes: list[str], device: torch.device) -> Predictor:
    try:
        predictor = Predictor.from_run(run, str(device))
    except (OSError, ValueError) as err:  # huggingface_hub: offline, unreachable, missing (OSError); bad id
        if not run.startswith(R.HUB_PREFIX):
            raise
        raise ModelError(f"--teachers {run}: could not fetch it from the Hugging Face Hub ({one_line(err)}); give a "
                         "run folder here instead") from err
    if predictor.labels != classes:
        raise DataError(f"--teachers {run}: its classes {predictor.labels} are not this dataset's {classes}")
    return predictor


def same_preprocessing(predictors: list[Predictor]) -> list[list[Predictor]]:
    """The teachers grouped by what they make of an image (decode side, channels, timm's eval transform)."""
    groups: dict[str, list[Predictor]] = {}
    for predictor in predictors:
        groups.setdefault(f"{predictor.mode} {predictor.min_side} {predictor.transform}", []).append(predictor)
    return list(groups.values())


def teacher_metrics(teachers: str | None, weight: float) -> dict:
    """What a distilled run records of its teachers (metrics.json `distilled_from`, their names; `distill_weight`;
    `teachers_wall_s`, how long the local ones trained), so that its lineage and whole cost show without them."""
    if not teachers:
        return {}
    return {"distilled_from": [teacher_folder(run).name for run in teacher_runs(teachers)], "distill_weight": weight,
            "teachers_wall_s": sum(R.read_metrics(run)["wall_s"] for run in local_teachers(teachers))}


def unknown_teachers(teachers: str | None) -> list[str]:
    """The teachers that name neither a finished run folder here nor a Hub repo."""
    return [run for run in teacher_runs(teachers or "")
            if not run.startswith(R.HUB_PREFIX) and not R.is_run(teacher_folder(run))]


def local_teachers(teachers: str | None) -> list[Path]:
    """The teachers that are run folders here, named as paths or `local-dir:` (an `hf-hub:` teacher's training is
    not known)."""
    return [teacher_folder(run) for run in teacher_runs(teachers or "") if R.is_run(teacher_folder(run))]


def teacher_folder(teacher: str) -> Path:
    """A teacher given as a path or as `local-dir:PATH`, as the folder it names here."""
    return Path(teacher.removeprefix(R.LOCAL_PREFIX))


def distillation_targets(labels: torch.Tensor, teacher_probs: torch.Tensor, weight: float,
                         label_smoothing: float) -> torch.Tensor:
    """Soft targets: the smoothed one-hot label and the teachers' probabilities, mixed by `weight`."""
    classes = teacher_probs.shape[-1]
    hard = torch.nn.functional.one_hot(labels, classes).float() * (1 - label_smoothing) + label_smoothing / classes
    return (1 - weight) * hard + weight * teacher_probs.to(hard.device)
