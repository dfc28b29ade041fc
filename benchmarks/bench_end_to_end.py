"""The whole product run against a plain PyTorch loop that trains the same model on the same images.

    python benchmarks/bench_end_to_end.py                       # CIFAR-10, 1,000 real images, 96 px, 2 epochs
    python benchmarks/bench_end_to_end.py --images 3000 --img-size 160 --epochs 3

Product: `trainers.finetune.main` (`--strategy full`, AdamW, cosine schedule per step, the trainer's defaults
otherwise), from the call to the written run folder: data reading, training, validation every epoch, temperature
fit, cost measurement, model card, predictions and metrics.
Plain loop: the same Lite0 with the same offline ImageNet weights, the same training and validation images (the
product's own split), timm's transforms in a DataLoader with the same workers, AdamW with timm's cosine schedule,
the product's default channels-last layout, one validation pass per epoch; nothing written. Both run in this
process, product first, then the plain loop, so imports are paid once and outside both. The table splits the
product's time into training (to the end of its last epoch's validation, from `history.csv`) and the finish
(everything after it). Writes
benchmarks/out/bench_end_to_end.csv.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import common
import timm
import torch
from timm.data import create_transform, resolve_data_config
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from torch.utils.data import DataLoader

import runfolder as R
from trainers import data as D
from trainers.finetune import main as finetune
from trainers.models import create_backbone

CHANNELS_LAST = torch.channels_last


def plain_loop(samples: D.DatasetSplits, args: argparse.Namespace) -> float:
    """Seconds a plain PyTorch loop takes for the same training: the baseline."""
    started = time.perf_counter()
    model, _ = create_backbone("efficientnet_lite0", len(samples.classes), drop_rate=0.2)
    model = model.to(memory_format=CHANNELS_LAST)  # the product's default layout: the comparison is of the loops
    data_config = resolve_data_config({"img_size": args.img_size}, model=model)
    loaders = [DataLoader(D.ImageDataset(split, create_transform(**data_config, is_training=training), "RGB"),
                          batch_size=32, shuffle=training, num_workers=args.workers, drop_last=training)
               for split, training in ((samples.train, True), (samples.val, False))]
    optimizer = create_optimizer_v2(model, opt="adamw", lr=1e-3, weight_decay=0.05)
    scheduler, _ = create_scheduler_v2(optimizer, sched="cosine", num_epochs=args.epochs,
                                       updates_per_epoch=len(loaders[0]))
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    for epoch in range(args.epochs):
        model.train()
        for step, (images, labels, _) in enumerate(loaders[0]):
            loss = loss_fn(model(images.contiguous(memory_format=CHANNELS_LAST)), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step_update(epoch * len(loaders[0]) + step + 1)
        model.eval()
        with torch.inference_mode():
            correct = sum((model(images.contiguous(memory_format=CHANNELS_LAST)).argmax(-1) == labels).sum().item()
                          for images, labels, _ in loaders[1])
        print(f"plain loop, epoch {epoch + 1}: val top-1 {correct / len(samples.val):.3f}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--img-size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    timm.create_model("tf_efficientnet_lite0")  # imports and registries warm for both sides

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = common.unpack_subset("cifar10", Path(tmp) / "data", args.images)
        started = time.perf_counter()
        run = finetune(["--dataset", "cifar10", "--data-dir", str(data_dir), "--strategy", "full",
                        "--img-size", str(args.img_size), "--epochs", str(args.epochs), "--batch-size", "32",
                        "--backbone-lr-scale", "1", "--workers", str(args.workers), "--no-record",
                        "--output", str(Path(tmp) / "runs")])
        product = time.perf_counter() - started
        trained = float(R.read_history(run).wall_s.iloc[-1])
        samples = D.load_dataset("cifar10", str(data_dir))
        D.make_val_split(samples, D.Carve(seed=42))  # the product's split: same images on both sides
        plain = plain_loop(samples, args)
    rows = [{"side": "product, whole run", "wall_s": product, "vs_plain": product / plain},
            {"side": "product, training (to the last validation)", "wall_s": trained, "vs_plain": trained / plain},
            {"side": "product, finish (temperature, cost, card, files)", "wall_s": product - trained,
             "vs_plain": (product - trained) / plain},
            {"side": "plain PyTorch loop (baseline)", "wall_s": plain, "vs_plain": 1.0}]
    common.report("bench_end_to_end", rows,
                  f"efficientnet_lite0, CIFAR-10, {args.images} images, {args.img_size} px, {args.epochs} epochs; "
                  f"{common.hardware(torch.device('cpu'))}, load {common.load_average()}")


if __name__ == "__main__":
    main()
