"""Which weights should a run keep, and do the trainer's regularisation defaults generalise? Scored on a held-out
split that no choice looks at.

    python benchmarks/ablate_keep.py                    # 3 seeds, chest X-ray, 1,200 training images, 160 px, 2 epochs
    python benchmarks/ablate_keep.py --seeds 0 1 2 3 4  # more seeds
    python benchmarks/ablate_keep.py --dataset cifar10 --img-size 96 --settings "backbone lr x0.1" "no dropout"

The training archive of `--dataset` (ARENA_SHARED_DATA) is split once, stratified and seeded, into `train/` and a
held-out `test/` of 600 images; `--dataset folder` then carves its validation split from `train/` as every run
does. Each seed trains the baseline (the trainer's defaults, `--keep last`) and each of `--settings` (all by
default):
  - `--keep best` (lowest validation loss): same settings, so the held-out difference is the choice of weights alone;
  - `--backbone-lr-scale 1 --label-smoothing 0 --drop-rate 0 --weight-decay 0.01`, `--keep last`;
  - each of those four changes on its own (the backbone learning rate as `--backbone-lr-scale 0.1`, the default
    until this ablation showed that 1 generalises better).
Every run is scored on the same 600 held-out images, so `python -m leaderboard compare` pairs any two of them.
Writes benchmarks/out/ablate_keep_<dataset>.csv and prints the table, with each setting's held-out top-1 minus the
baseline's.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
from pathlib import Path

import common
import torch

import runfolder as R
from trainers.finetune import main as finetune

HELD_OUT = 600  # about the size of the official chest X-ray test split (624)
SETTINGS = {
    "defaults, keep last": [],
    "defaults, keep best": ["--keep", "best"],
    "no regularisation, keep last": ["--backbone-lr-scale", "1", "--label-smoothing", "0", "--drop-rate", "0",
                                     "--weight-decay", "0.01"],
    # each of the four changes on its own
    "backbone lr x0.1": ["--backbone-lr-scale", "0.1"],
    "no label smoothing": ["--label-smoothing", "0"],
    "no dropout": ["--drop-rate", "0"],
    "weight decay 0.01": ["--weight-decay", "0.01"],
}
# The datasets whose training folder of <class>/ image folders a held-out split is carved from.
DATASETS = ("chest-xray", "cifar10", "fer2013")
BASELINE = "defaults, keep last"


def held_out_layout(source: Path, dest: Path, seed: int = 0) -> Path:
    """`dest/{train,test}/<class>/` as links into `source/<class>/`: a stratified, seeded held-out split."""
    classes = sorted(p.name for p in source.iterdir() if p.is_dir())
    total = sum(len(list((source / c).iterdir())) for c in classes)
    for name in classes:
        files = sorted((source / name).iterdir())
        random.Random(f"{seed}-{name}").shuffle(files)
        cut = round(HELD_OUT * len(files) / total)
        for split, chosen in (("test", files[:cut]), ("train", files[cut:])):
            (dest / split / name).mkdir(parents=True, exist_ok=True)
            for file in chosen:
                (dest / split / name / file.name).symlink_to(file)
    return dest


def run(data: Path, runs: Path, setting: str, seed: int, args: argparse.Namespace) -> dict:
    name = f"{setting.replace(', ', '-').replace(' ', '_')}-seed{seed}"
    run_dir = finetune(["--dataset", "folder", "--data-dir", str(data), "--model", "efficientnet_lite0",
                        "--img-size", str(args.img_size), "--epochs", str(args.epochs), "--batch-size", "32",
                        "--max-train-samples", str(args.train_images), "--workers", "2", "--seed", str(seed),
                        "--no-record", "--output", str(runs), "--name", name, *SETTINGS[setting]])
    metrics, history = R.read_metrics(run_dir), R.read_history(run_dir)
    return {"setting": setting, "seed": seed, "val_top1_best": history.val_acc.max(),
            "best_epoch": metrics["best_epoch"], "kept": metrics["kept"], "held_out_top1": metrics["top1"],
            "held_out_specificity": metrics.get("specificity"), "held_out_sensitivity": metrics.get("sensitivity"),
            "wall_s": metrics["wall_s"], "run": str(run_dir)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-images", type=int, default=1200)
    parser.add_argument("--img-size", type=int, default=160)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--keep-runs", type=Path, help="write the run folders here (default: a temporary folder)")
    parser.add_argument("--dataset", default="chest-xray", choices=list(DATASETS))
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS),
                        help=f"settings to train (the baseline, {BASELINE!r}, is always trained)")
    args = parser.parse_args()
    settings = [BASELINE, *(s for s in args.settings if s != BASELINE)]
    archive, data_dir = common.ARCHIVES[args.dataset]
    folder = f"{data_dir}/train"
    with tempfile.TemporaryDirectory(prefix="ablate-keep-") as tmp:
        common.unpack_archive(common.SHARED_DATA / archive, Path(tmp) / "archive")
        data = held_out_layout(Path(tmp) / "archive" / folder, Path(tmp) / "data")
        runs = args.keep_runs or Path(tmp) / "runs"
        rows = [run(data, runs, setting, seed, args) for seed in args.seeds for setting in settings]
    baseline = {r["seed"]: r["held_out_top1"] for r in rows if r["setting"] == BASELINE}
    for row in rows:
        row["vs_baseline_points"] = 100 * (row["held_out_top1"] - baseline[row["seed"]])
    summary = [{"setting": s, "seeds": len(args.seeds),
                "held_out_top1_mean": statistics.mean(r["held_out_top1"] for r in rows if r["setting"] == s),
                "held_out_top1_sd": (statistics.stdev(r["held_out_top1"] for r in rows if r["setting"] == s)
                                     if len(args.seeds) > 1 else None),
                "vs_baseline_points_mean": statistics.mean(r["vs_baseline_points"] for r in rows if r["setting"] == s),
                "hardware": common.hardware(torch.device("cpu")), "load_1min": common.load_average()}
               for s in settings]
    common.report(f"ablate_keep_{args.dataset}", rows, f"held-out {args.dataset}, per run")
    common.report(f"ablate_keep_{args.dataset}_summary", summary,
                  f"held-out {args.dataset} ({HELD_OUT} images), mean over seeds")


if __name__ == "__main__":
    main()
