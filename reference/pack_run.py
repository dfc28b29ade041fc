#!/usr/bin/env python
"""Pack a finished run folder as a shipped reference model.

    python reference/pack_run.py RUN_DIR reference/<name> --data-dir DATA_ROOT

Copies the run folder without its resumable `checkpoint/` (optimizer state: tens of MB), stores the weights as
fp16 safetensors (half the size), makes the sample ids in predictions.parquet relative to DATA_ROOT (the images
do not ship), and checks that the fp16 model predicts what the fp32 run predicted on its evaluation images.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import pandas as pd
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import runfolder as R  # noqa: E402
from trainers.inference import Predictor  # noqa: E402


def pack(run: Path, dest: Path, data_root: Path) -> pd.DataFrame:
    """Copy `run` to `dest` in reference form; returns the fp32 run's predictions (absolute sample paths)."""
    if dest.exists():
        raise SystemExit(f"error: {dest} exists")
    predictions = pd.read_parquet(run / R.PREDICTIONS)
    root = data_root.resolve()
    relative = predictions.assign(sample_id=[str(Path(p).relative_to(root)) for p in predictions.sample_id])
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns(R.CHECKPOINT))
    weights = dest / R.WEIGHTS
    state = load_file(str(weights))
    save_file({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, str(weights))
    R.write_predictions(dest, relative)
    return predictions


def fp16_agreement(dest: Path, predictions: pd.DataFrame, batch: int = 64) -> float:
    """Fraction of evaluation images on which the fp16 reference predicts the fp32 run's label."""
    predictor = Predictor.from_run(dest)
    paths = predictions.sample_id.tolist()
    labels = []
    for start in range(0, len(paths), batch):
        result = predictor.predict(paths[start:start + batch])
        labels += [predictor.labels[i] for i in result.probs.argmax(axis=1)]
    return float((pd.Series(labels) == predictions.pred_label.reset_index(drop=True)).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--data-dir", type=Path, required=True, help="root the sample ids are made relative to")
    args = parser.parse_args()
    predictions = pack(args.run, args.dest, args.data_dir)
    size = (args.dest / R.WEIGHTS).stat().st_size / 1e6
    print(f"{args.dest}: {size:.1f} MB fp16 weights; fp16 agrees with the fp32 run on "
          f"{fp16_agreement(args.dest, predictions):.1%} of {len(predictions)} evaluation images")


if __name__ == "__main__":
    main()
