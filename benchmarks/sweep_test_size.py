"""A finished run's kept weights scored at other test sizes and centre crops, on the images it was evaluated on.

    python benchmarks/sweep_test_size.py RUN --data-dir DATA/cifar10 --sizes 112 128 144 --crops 0.875 1.0

The first row is the run's own preprocessing (its config.json), the baseline of the "vs run" column. Choose on a
validation split, then apply the choice with `python trainers/finetune.py --resume RUN --test-img-size N
--crop-pct C`, which evaluates again through the trainer and records it in config.json. This script only reads.
Writes benchmarks/out/sweep_test_size.csv.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import common
import pandas as pd
import timm
import torch
from timm.data import create_transform, resolve_data_config

import runfolder as R
from trainers.inference import load_image


def top1(model: torch.nn.Module, images: list, targets: torch.Tensor, data_config: dict, batch: int = 100) -> float:
    transform = create_transform(**data_config, is_training=False)
    with torch.inference_mode():
        predicted = torch.cat([model(torch.stack([transform(image) for image in images[i:i + batch]])).argmax(-1)
                               for i in range(0, len(images), batch)])
    return (predicted == targets).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--data-dir", type=Path, help="the run's dataset on this machine (default: its data_dir)")
    parser.add_argument("--sizes", type=int, nargs="+", required=True)
    parser.add_argument("--crops", type=float, nargs="+", default=[0.875, 1.0])
    args = parser.parse_args()

    model = timm.create_model(f"local-dir:{args.run.resolve()}", pretrained=True).eval()
    data_dir = args.data_dir or R.data_dir(args.run)
    recorded = pd.read_parquet(args.run / R.PREDICTIONS)
    labels = model.pretrained_cfg["label_names"]
    targets = torch.tensor([labels.index(label) for label in recorded.true_label])
    images = [load_image(data_dir / sample_id) for sample_id in recorded.sample_id]
    own = resolve_data_config({}, model=model)
    baseline = top1(model, images, targets, own)
    rows = [{"test size": own["input_size"][-1], "crop": own["crop_pct"], "top-1": baseline, "vs run": 0.0,
             "preprocessing": "the run's own (baseline)"}]
    for size in args.sizes:
        for crop in args.crops:
            if (size, crop) == (own["input_size"][-1], own["crop_pct"]):
                continue
            config = resolve_data_config({"img_size": size, "crop_pct": crop, "in_chans": own["input_size"][0]},
                                         model=model)
            accuracy = top1(model, images, targets, config)
            rows.append({"test size": size, "crop": crop, "top-1": accuracy, "vs run": accuracy - baseline,
                         "preprocessing": "--test-img-size, --crop-pct"})
    split = R.read_metrics(args.run)["eval_split"]
    common.report("sweep_test_size", rows, f"{args.run.name}: top-1 on its {len(images):,} {split} images")


if __name__ == "__main__":
    main()
