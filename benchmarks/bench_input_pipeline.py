"""Input pipeline: decoded and augmented images/s on real training images, against the model's step rate.

    python benchmarks/bench_input_pipeline.py          # CPU: 4 datasets x 128 images, 128 px, batch 32, 2 workers,
                                                       # both pipelines (--pipeline workers and preload)
    python benchmarks/bench_input_pipeline.py --device cuda --img-size 224 --batch-size 256 --images 8192 \
        --workers 8                                     # GPU

For each dataset (a subset of its archive in ARENA_SHARED_DATA unpacked into a temporary directory, every class
present):
  pipeline   - the trainer's own training loader (`finetune.prepare_data`, `make_loader`), iterated alone:
               `workers` = `ImageDataset` decoding through the shared inference path + timm transforms in
               DataLoader workers; `preload` = images decoded once onto the device (the one-off decode time is
               reported as preload_s), crop/flip/normalise per batch there;
  model step - the trainer's `train_one_epoch` on a synthetic batch already on the device (model-only rate);
  full loop  - `train_one_epoch` over the real loader (target: >= 95% of the model step rate).
Model step and full loop alternate `--rounds` times; the ratio is the median of the per-round ratios.
Writes benchmarks/out/bench_input_pipeline.csv.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import common
import torch
from archives import SHARED_ARCHIVES
from bench_train_step import NUM_CLASSES, product_trainer, synthetic_batches
from timm.data import resolve_data_config

from trainers.config import TrainConfig, parse_config
from trainers.finetune import Distributed, EpochStats, make_loader, prepare_data, training_transform
from trainers.inference import image_mode


def dataset_config(dataset: str, data_dir: Path, args: argparse.Namespace, pipeline: str = "workers") -> TrainConfig:
    return parse_config(["--dataset", dataset, "--data-dir", str(data_dir), "--model", args.model,
                         "--pipeline", pipeline,
                         "--img-size", str(args.img_size), "--batch-size", str(args.batch_size),
                         "--workers", str(args.workers), "--max-train-samples", str(args.images),
                         "--device", args.device, "--no-record"])


def training_loader(cfg: TrainConfig, model: torch.nn.Module, device: torch.device) -> tuple[Iterable, float]:
    """The loader `finetune.train` builds for epoch 0, and the seconds spent preloading (0 for workers)."""
    splits = prepare_data(cfg)
    data_config = resolve_data_config({"img_size": cfg.img_size}, model=model)
    mode = image_mode(data_config["input_size"][0])
    started = time.perf_counter()
    transform = training_transform(cfg, splits, data_config, mode, device)
    preload_s = time.perf_counter() - started if cfg.pipeline == "preload" else 0.0
    return make_loader(cfg, splits.train, transform, mode, 0, Distributed()), preload_s


def pipeline_rate(loader: Iterable, device: torch.device) -> float:
    """Images/s of the loader alone, each batch moved to the device as the trainer does."""
    seen = 0

    def drain() -> None:
        nonlocal seen
        for images, _, _ in loader:
            seen += len(images.to(device, non_blocking=True))

    seconds = common.timed(drain, device)
    return seen / seconds


def train_rate(train: Callable[[Iterable], EpochStats], loader: Iterable, device: torch.device) -> float:
    """Images/s of one `train_one_epoch` over `loader`, timed from outside (device queue drained)."""
    stats: list[EpochStats] = []
    seconds = common.timed(lambda: stats.append(train(loader)), device)
    return stats[0].images / seconds


def bench_pipelines(roots: dict[str, Path], args: argparse.Namespace, device: torch.device) -> list[dict]:
    """One row per (dataset, pipeline): loader alone, model step alone and the full loop, images/s."""
    rows = []
    base = dataset_config(next(iter(roots)), next(iter(roots.values())), args)
    steps = -(-args.images // args.batch_size)
    model, train = product_trainer(base, device, NUM_CLASSES, steps)
    batches = synthetic_batches(base, steps, device)
    train(batches[:1])  # warm-up
    for (dataset, root), pipeline_name in itertools.product(roots.items(), args.pipelines):
        loader, preload_s = training_loader(dataset_config(dataset, root, args, pipeline_name), model, device)
        pipeline = pipeline_rate(loader, device)
        model_rates, full_rates = [], []
        for _ in range(args.rounds):  # alternate, so load from other processes hits both alike
            model_rates.append(train_rate(train, batches, device))
            full_rates.append(train_rate(train, loader, device))
        rows.append({
            "dataset": dataset, "pipeline": pipeline_name, "images": len(loader.sampler), "img_size": args.img_size,
            "batch": args.batch_size, "workers": args.workers, "preload_s": preload_s, "pipeline_img_s": pipeline,
            "model_step_img_s": statistics.median(model_rates), "full_loop_img_s": statistics.median(full_rates),
            **common.ratio_summary(full_rates, model_rates),
            "hardware": common.hardware(device), "load_1min": common.load_average(),
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    one_per_archive = [archive.trains[0] for archive in SHARED_ARCHIVES.values() if archive.trains]
    parser.add_argument("--datasets", nargs="+", default=one_per_archive, choices=list(common.ARCHIVES))
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--img-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--images", type=int, default=128, help="training images per dataset")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pipelines", nargs="+", default=["workers", "preload"], choices=["workers", "preload"])
    parser.add_argument("--rounds", type=int, default=2, help="model-step / full-loop epochs per dataset, alternating")
    args = parser.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        roots = {d: common.unpack_subset(d, Path(tmp) / d, int(args.images * 1.25)) for d in args.datasets}
        rows = bench_pipelines(roots, args, device)
    common.report("bench_input_pipeline", rows,
                  f"input pipeline vs model step ({args.model}; product loader, real images)")


if __name__ == "__main__":
    main()
