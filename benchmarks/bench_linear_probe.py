"""Linear probe on cached features against the same probe that runs the frozen backbone at every step.

    python benchmarks/bench_linear_probe.py                          # CIFAR-10, 1,000 real images, 128 px, 10 epochs
    python benchmarks/bench_linear_probe.py --images 5000 --epochs 30 --img-size 160

Both sides are `trainers/finetune.py --strategy linear-probe` with the same data, model, resolution, optimiser and
epochs; only `--feature-cache` differs (on by default, `--no-feature-cache` the baseline). The cached run pays one
backbone pass over every image, then each epoch trains the head alone; the baseline decodes, augments and runs the
backbone every epoch. Wall time is the whole run, from reading the data to the written run folder, as
`metrics.json` records it. Also reported: each run's validation top-1, because the cached probe trains without
per-epoch augmentation. Writes benchmarks/out/bench_linear_probe.csv.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import common
import torch

import runfolder as R
from trainers.finetune import main as finetune

SIDES = {"cached features": ["--feature-cache"], "backbone every step (baseline)": ["--no-feature-cache"]}


def run_side(flags: list[str], data_dir: Path, out: Path, args: argparse.Namespace) -> dict:
    run = finetune(["--dataset", args.dataset, "--data-dir", str(data_dir), "--strategy", "linear-probe",
                    "--img-size", str(args.img_size), "--epochs", str(args.epochs), "--batch-size", "64",
                    "--workers", str(args.workers), "--output", str(out), "--no-record", *flags])
    metrics = R.read_metrics(run)
    return {"wall_s": metrics["wall_s"], "s_per_epoch": metrics["wall_s"] / metrics["epochs"],
            "val_top1": metrics["top1"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cifar10", choices=list(common.ARCHIVES))
    parser.add_argument("--images", type=int, default=1000, help="real images unpacked (validation carved from them)")
    parser.add_argument("--img-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = common.unpack_subset(args.dataset, Path(tmp) / "data", args.images)
        results = {side: run_side(flags, data_dir, Path(tmp) / "runs", args) for side, flags in SIDES.items()}
    baseline = results["backbone every step (baseline)"]["wall_s"]
    rows = [{"side": side, **r, "speedup": baseline / r["wall_s"]} for side, r in results.items()]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    common.report("bench_linear_probe", rows,
                  f"linear probe, efficientnet_lite0, {args.dataset}, {args.images} images, {args.img_size} px, "
                  f"{args.epochs} epochs; {common.hardware(device)}, load {common.load_average()}")


if __name__ == "__main__":
    main()
