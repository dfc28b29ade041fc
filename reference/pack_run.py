#!/usr/bin/env python
"""Pack a finished run folder as a shipped reference model.

    python reference/pack_run.py RUN_DIR reference/<name> [--data-dir DIR] [--relabel]

The reference form of a run folder:
- no resumable `checkpoint/` (optimizer state: tens of MB);
- fp16 safetensors weights (half the size);
- sample ids in predictions.parquet relative to the dataset's data directory, because the images do not ship;
- no path of the packing machine: `data_dir` in train_config.yaml names a placeholder for the user's copy of the
  dataset (`path/to/chest_xray`), other absolute paths (`output`, `resume`, ...) fall back to their defaults;
- no per-epoch confusion matrices in history.csv above `runfolder.HISTORY_MATRIX_MAX_CLASSES` classes, as the trainer
  now writes it;
- the model card and the confusion matrix drawn again from these files.

DIR is where the run's images are on this machine (default: the run's own `data_dir`). The fp16 model is then
checked to predict what the run predicted on its evaluation images: below `MIN_FP16_AGREEMENT` of them the pack is
refused, and a new DEST is not written.

RUN_DIR may be a reference folder packed earlier, and DEST the same folder: the pack is then redone in place.
Sample ids that an earlier pack made relative to the folder above DIR are rebased onto DIR. `--relabel` replaces
the class names by those the dataset reader gives now (Tiny ImageNet: words.txt names instead of WordNet ids),
class index by class index, in every file; the weights and the predictions themselves do not change.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
from safetensors.torch import load_file, save_file

import runfolder as R
from model_cards.card import write_card
from trainers.config import TrainConfig
from trainers.data import load_dataset
from trainers.distill import teacher_runs
from trainers.inference import Predictor
from trainers.models import SOUP_SEPARATOR, weight_files

# fp16 rounding may flip a near-tie or two; below this share of the run's own predictions, the weights or the images
# are not the ones the run was scored with
MIN_FP16_AGREEMENT = 0.95


def relative_ids(sample_ids: pd.Series, data_dir: Path) -> list[str]:
    """Each file id relative to `data_dir`: absolute paths (runs written before ids were relative) are made relative,
    ids relative to `data_dir`'s parent (`chest_xray/train/...`, an earlier pack's form) lose that first part."""
    ids = []
    for sample_id in sample_ids:
        path = Path(sample_id)
        if path.is_absolute():
            path = path.relative_to(data_dir)
        elif not (data_dir / path).is_file() and path.parts[0] == data_dir.name:
            path = path.relative_to(data_dir.name)
        if not (data_dir / path).is_file():
            raise SystemExit(f"error: {sample_id}: no such image under --data-dir {data_dir}")
        ids.append(path.as_posix())
    return ids


def portable_train_config(config: dict[str, Any]) -> dict[str, Any]:
    """train_config.yaml without the packing machine's paths."""
    defaults = TrainConfig().to_dict()
    portable = {
        key: defaults.get(key) if isinstance(value, str) and Path(value).is_absolute() else value
        for key, value in config.items()
    }
    if config.get("data_dir"):
        portable["data_dir"] = f"path/to/{Path(config['data_dir']).name}"  # a placeholder for the user's copy
    if config.get("weights"):  # a run trained on from other runs' weights: a second stage, or a soup of several
        portable["weights"] = SOUP_SEPARATOR.join(  # where those runs write them
            f"{where_written(path.parent)}/{path.name}" if path.is_absolute() else str(path)
            for path in weight_files(config["weights"]))
    if config.get("teachers"):  # a distilled run: its teachers, where their recipes write them
        portable["teachers"] = SOUP_SEPARATOR.join(
            where_written(Path(run)) if Path(run).is_absolute() else run for run in teacher_runs(config["teachers"]))
    return portable


def where_written(run: Path) -> str:
    """A run folder of the packing machine as its recipe writes it by default (`runs/<name>`)."""
    return f"{TrainConfig.output}/{run.name}"


def relabel(dest: Path, data_dir: Path) -> None:
    """Replace the class names in config.json, metrics.json and predictions.parquet by the reader's current ones."""
    metrics, config = R.read_metrics(dest), R.read_config(dest)
    splits = load_dataset(metrics["dataset"], data_dir)
    old = config["label_names"]
    if old not in (splits.classes, splits.class_ids):
        raise SystemExit(f"error: {dest}: its {len(old)} classes are not the dataset's, in the same order")
    name = dict(zip(old, splits.classes, strict=True))
    config = {key: value for key, value in config.items() if key not in ("label_descriptions", R.LABEL_IDS)}
    config["label_names"] = splits.classes
    if splits.descriptions:
        config["label_descriptions"] = splits.descriptions
    if splits.class_ids:
        config[R.LABEL_IDS] = splits.class_ids
    R.write_json(dest / R.CONFIG, config)
    for row in metrics["per_class"]:
        row["label"] = name[row["label"]]
    R.write_json(dest / R.METRICS, metrics)
    predictions = pd.read_parquet(dest / R.PREDICTIONS)
    R.write_predictions(dest, predictions.assign(
        true_label=predictions.true_label.map(name),
        pred_label=predictions.pred_label.map(name),
        topk_labels=predictions.topk_labels.map(lambda labels: [name[label] for label in labels]),
    ))


def require_run(run: Path) -> None:
    if not R.is_run(run):
        raise SystemExit(f"error: {run} is not a finished run folder (no {R.METRICS}): let it finish, or --resume it")


def pack(run: Path, dest: Path, data_dir: Path, new_labels: bool = False) -> float:
    """Write the reference form of `run` to `dest` (which may be `run` itself: repacked in place). The new folder is
    assembled and checked in a hidden sibling folder, then renamed into place (an in-place pack swaps it for the old
    one, whose `checkpoint/` goes with it), so a failed pack leaves `dest` as it was. Returns how often the fp16
    weights predict what the run recorded (`checked_agreement`)."""
    require_run(run)
    dest = dest.resolve()  # `.` has no name to stage beside
    in_place = dest == run.resolve()
    if dest.exists() and not in_place:
        raise SystemExit(f"error: {dest} exists")
    hidden = dest.with_name(f".{dest.name}.packing")
    staging = hidden / dest.name  # the folder's own name: the card is named after it
    shutil.rmtree(hidden, ignore_errors=True)
    shutil.copytree(run, staging, ignore=shutil.ignore_patterns(R.CHECKPOINT))  # the reference form has none
    replaced = hidden / "replaced"
    try:
        pack_folder(staging, data_dir, new_labels)
        agreement = checked_agreement(staging, data_dir)
        if in_place:
            dest.rename(replaced)  # moved aside only now that its successor is complete and checked
        staging.rename(dest)
    finally:
        if replaced.exists() and not dest.exists():  # interrupted between the two renames: the run goes back
            replaced.rename(dest)
        shutil.rmtree(hidden)
    return agreement


def pack_folder(dest: Path, data_dir: Path, new_labels: bool) -> None:
    """fp16 weights, relative sample ids, a portable train_config.yaml and a fresh card, file by file, atomically."""
    state = load_file(str(dest / R.WEIGHTS))
    with R.atomic_path(dest / R.WEIGHTS) as tmp:
        save_file({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, str(tmp))
    predictions = pd.read_parquet(dest / R.PREDICTIONS)
    R.write_predictions(dest, predictions.assign(sample_id=relative_ids(predictions.sample_id, data_dir)))
    # the placeholder names the folder the sample ids were just made relative to, whatever the run recorded; the
    # name is the folder's, so that `--config reference/<name>/train_config.yaml` writes runs/<name>
    R.write_train_config(dest, portable_train_config(R.read_train_config(dest) | {"data_dir": str(data_dir),
                                                                                   "name": dest.name}))
    trim_history(dest)
    if new_labels:
        relabel(dest, data_dir)
    write_card(dest)


def trim_history(dest: Path) -> None:
    """Drop the per-epoch confusion matrices that a run of more classes than R.HISTORY_MATRIX_MAX_CLASSES recorded
    before the trainer stopped keeping them."""
    history = R.read_history(dest)
    too_many = R.read_metrics(dest)["num_classes"] > R.HISTORY_MATRIX_MAX_CLASSES
    if too_many and "val_confusion_matrix" in history and history.val_confusion_matrix.notna().any():
        R.write_history(dest, history.assign(val_confusion_matrix=None).to_dict("records"))


def checked_agreement(dest: Path, data_dir: Path) -> float:
    """`fp16_agreement`, refused below MIN_FP16_AGREEMENT: such weights are not the run that was scored."""
    agreement = fp16_agreement(dest, data_dir)
    if agreement < MIN_FP16_AGREEMENT:
        raise SystemExit(f"error: the fp16 weights predict the recorded label on only {agreement:.1%} of the "
                         f"evaluation images (at least {MIN_FP16_AGREEMENT:.0%} expected): are the images under "
                         "--data-dir the ones the run was evaluated on?")
    return agreement


def fp16_agreement(dest: Path, data_dir: Path, batch: int = 64) -> float:
    """Fraction of evaluation images on which the fp16 reference predicts the label the run recorded."""
    predictor = Predictor.from_run(dest)
    recorded = pd.read_parquet(dest / R.PREDICTIONS)
    paths = [str(data_dir / sample_id) for sample_id in recorded.sample_id]
    labels = []
    for start in range(0, len(paths), batch):
        result = predictor.predict(paths[start:start + batch])
        labels += [predictor.labels[i] for i in result.probs.argmax(axis=1)]
    return float((pd.Series(labels) == recorded.pred_label).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="finished run folder (or a reference folder packed earlier)")
    parser.add_argument("dest", type=Path, help="reference folder to write (the run folder itself: in place)")
    parser.add_argument("--data-dir", type=Path, help="the run's dataset on this machine (default: its data_dir)")
    parser.add_argument("--relabel", action="store_true", help="take the class names the dataset reader gives now")
    args = parser.parse_args()
    require_run(args.run)  # before its data_dir is looked up
    data_dir = args.data_dir or R.data_dir(args.run)
    if data_dir is None or not data_dir.is_dir():
        raise SystemExit(f"error: the run's images are not at {data_dir}: give --data-dir")
    dest = args.dest.resolve()  # an in-place pack of `.` replaces the working directory itself
    agreement = pack(args.run, dest, data_dir.resolve(), args.relabel)
    size = (dest / R.WEIGHTS).stat().st_size / 1e6
    print(f"{args.dest}: {size:.1f} MB fp16 weights; fp16 agrees with the recorded predictions on {agreement:.1%} "
          f"of {len(pd.read_parquet(dest / R.PREDICTIONS))} evaluation images")


if __name__ == "__main__":
    main()
