"""Training-step throughput: the product's training loop against timm's reference step, in the same run.

    python benchmarks/bench_train_step.py                     # CPU: efficientnet_lite0, batch 16, 224 px, fp32
    python benchmarks/bench_train_step.py --device cuda --models resnet50 efficientnet_lite0 \
        --batch-size 256 --img-size 224 --channels-last --steps 30 --rounds 3     # GPU: bf16, plus MFU

Product: `trainers.finetune.train_one_epoch`, the loop the trainer runs, with the optimiser (fused kernels),
schedule, loss and precision that `finetune.build_trainer` builds from the trainer's default configuration
(`--compile` turns on the trainer's torch.compile).
Reference: the step timm's train.py takes, eager: autocast forward, loss, backward, optimizer step, zero_grad;
same model, batch, optimizer and precision (bf16 autocast on GPU, fp32 on CPU), channels-last when asked.
Both read the same synthetic batch already on the device, so only the step is measured (the input pipeline has
its own benchmark). The two alternate, `--rounds` times each; the ratio is the median of the per-round ratios.
MFU: measured training FLOPs (torch's FLOP counter over one forward + backward) x images/s / the GPU's peak dense
bf16 FLOP/s; not computed on CPU.
Writes benchmarks/out/bench_train_step.csv.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from functools import partial

import common
import timm
import torch
from timm.optim import create_optimizer_v2
from torch.utils.flop_counter import FlopCounterMode

from trainers.config import TrainConfig, parse_config
from trainers.finetune import Distributed, EpochStats, build_trainer, train_one_epoch
from trainers.models import create_backbone, resolve_model_name, set_trainable

NUM_CLASSES = 1000
# Peak dense bf16 tensor FLOP/s by device name, first match wins (NVIDIA data sheets, without sparsity).
PEAK_BF16 = [("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H100", 989e12), ("H200", 989e12), ("A100", 312e12)]

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def product_config(model: str, args: argparse.Namespace) -> TrainConfig:
    """The trainer's own configuration for this model, batch and precision (defaults otherwise)."""
    flags = ["--model", model, "--batch-size", str(args.batch_size), "--img-size", str(args.img_size),
             "--device", args.device, "--strategy", "full", "--amp" if args.amp else "--no-amp",
             "--channels-last" if args.channels_last else "--no-channels-last",
             "--compile" if args.compile else "--no-compile"]
    return parse_config(flags)


def autocast(cfg: TrainConfig, device: torch.device) -> AbstractContextManager:
    """The trainer's precision: bf16 autocast on GPU when --amp, fp32 otherwise."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if cfg.amp and device.type == "cuda" else nullcontext()


def product_trainer(cfg: TrainConfig, device: torch.device, num_classes: int,
                    steps_per_epoch: int) -> tuple[torch.nn.Module, Callable[[Iterable], EpochStats]]:
    """The trainer's model, optimiser, schedule and loss as `finetune.main` builds them, and a function that
    runs its `train_one_epoch` over any iterable of (images, labels, indices) batches."""
    model, _ = create_backbone(cfg.model, num_classes, pretrained=False, drop_rate=cfg.drop_rate)
    set_trainable(model, cfg.strategy)
    trainer = build_trainer(cfg, model, [1] * num_classes, steps_per_epoch, device, Distributed())
    return model, partial(train_one_epoch, trainer, epoch=0)


def reference_trainer(cfg: TrainConfig, device: torch.device) -> tuple[torch.nn.Module, Callable[[list], None]]:
    """timm train.py's step, eager, for the same architecture, optimizer, loss and precision."""
    model = timm.create_model(resolve_model_name(cfg.model), num_classes=NUM_CLASSES, drop_rate=cfg.drop_rate)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = create_optimizer_v2(model, opt=cfg.opt, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                    momentum=cfg.momentum)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    amp = autocast(cfg, device)

    def run(batches: list[Batch]) -> None:
        model.train()
        for images, labels, _ in batches:
            if cfg.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with amp:
                loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    return model, run


def train_flops_per_image(model: torch.nn.Module, cfg: TrainConfig, batch: Batch, device: torch.device) -> float:
    """FLOPs of one forward + backward, counted by torch, per image."""
    images, labels, _ = batch
    counter = FlopCounterMode(display=False)
    with counter, autocast(cfg, device):
        torch.nn.functional.cross_entropy(model(images), labels).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(images)


def peak_flops(device: torch.device, cfg: TrainConfig) -> float | None:
    if device.type != "cuda" or not cfg.amp:
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16 if key in name), None)


def synthetic_batches(cfg: TrainConfig, steps: int, device: torch.device) -> list[Batch]:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(cfg.batch_size, 3, cfg.img_size, cfg.img_size, generator=generator).to(device)
    labels = torch.randint(0, NUM_CLASSES, (cfg.batch_size,), generator=generator).to(device)
    return [(images, labels, torch.arange(cfg.batch_size))] * steps


def bench_model(name: str, args: argparse.Namespace, device: torch.device) -> dict:
    cfg = product_config(name, args)
    batches = synthetic_batches(cfg, args.steps, device)
    product_model, product = product_trainer(cfg, device, NUM_CLASSES, args.steps)
    reference_model, reference = reference_trainer(cfg, device)
    product(batches[: args.warmup])  # warm-up: allocator, cuDNN autotuning, torch.compile
    reference(batches[: args.warmup])
    rates: dict[str, list[float]] = {"product": [], "timm": []}
    for _ in range(args.rounds):  # alternate, so load from other processes hits both sides alike
        rates["product"].append(len(batches) * cfg.batch_size / common.timed(lambda: product(batches), device))
        rates["timm"].append(len(batches) * cfg.batch_size / common.timed(lambda: reference(batches), device))
    product_rate, timm_rate = (statistics.median(rates[k]) for k in ("product", "timm"))
    ratio = common.ratio_summary(rates["product"], rates["timm"])
    peak = peak_flops(device, cfg)
    flops = train_flops_per_image(reference_model, cfg, batches[0], device) if peak else None
    del product_model
    return {
        "model": resolve_model_name(name), "batch": cfg.batch_size, "img_size": cfg.img_size,
        "precision": "bf16" if cfg.amp and device.type == "cuda" else "fp32", "channels_last": cfg.channels_last,
        "compile": cfg.compile, "product_img_s": product_rate, "timm_img_s": timm_rate, **ratio,
        "product_mfu": flops * product_rate / peak if peak else None,
        "timm_mfu": flops * timm_rate / peak if peak else None,
        "hardware": common.hardware(device), "load_1min": common.load_average(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["efficientnet_lite0"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=5, help="steps per timed epoch")
    parser.add_argument("--rounds", type=int, default=3, help="timed epochs per side (alternating)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per side first")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True, help="bf16 autocast on GPU")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="the trainer's --compile (product side only)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as timm's train.py; one process-wide setting for both sides
    rows = [bench_model(name, args, device) for name in args.models]
    common.report("bench_train_step", rows, "training step: product loop vs timm reference step (images/s)")


if __name__ == "__main__":
    main()
