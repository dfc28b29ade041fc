"""Channels-last against the default contiguous (NCHW) layout: the product's own training step, in the same run.

    python benchmarks/bench_memory_format.py                  # CPU: efficientnet_lite0 and resnet50, 96 px, batch 32
    python benchmarks/bench_memory_format.py --img-size 160 --threads 1

Both sides are `trainers.finetune.train_one_epoch` with the trainer built by `finetune.build_trainer` from the
default configuration; the only difference is `--channels-last` against `--no-channels-last`. Both read the same
synthetic batch, already on the device, and alternate `--rounds` times; the ratio is the median of the per-round
ratios. This is the measurement behind the trainer's `--channels-last` default.
Writes benchmarks/out/bench_memory_format.csv.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics

import common
import torch
from bench_train_step import NUM_CLASSES, product_config, product_trainer, synthetic_batches

from trainers.models import resolve_model_name


def bench_model(name: str, args: argparse.Namespace, device: torch.device) -> dict:
    base = product_config(name, args)
    layouts = {"channels_last": dataclasses.replace(base, channels_last=True),
               "contiguous": dataclasses.replace(base, channels_last=False)}
    batches = synthetic_batches(base, args.steps, device)
    steps = {layout: product_trainer(cfg, device, NUM_CLASSES, args.steps)[1] for layout, cfg in layouts.items()}
    for step in steps.values():
        step(batches[: args.warmup])
    rates: dict[str, list[float]] = {layout: [] for layout in layouts}
    for _ in range(args.rounds):  # alternate, so load from other processes hits both sides alike
        for layout, step in steps.items():
            rates[layout].append(len(batches) * base.batch_size / common.timed(lambda s=step: s(batches), device))
    return {
        "model": resolve_model_name(name), "batch": base.batch_size, "img_size": base.img_size,
        "threads": torch.get_num_threads(),
        **{f"{layout}_img_s": statistics.median(r) for layout, r in rates.items()},
        **common.ratio_summary(rates["channels_last"], rates["contiguous"]),
        "hardware": common.hardware(device), "load_1min": common.load_average(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["efficientnet_lite0", "resnet50"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--img-size", type=int, default=96)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--steps", type=int, default=4, help="steps per timed epoch")
    parser.add_argument("--rounds", type=int, default=3, help="timed epochs per side (alternating)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per side first")
    args = parser.parse_args()
    args.amp, args.compile, args.channels_last = True, False, False  # product_config's other flags: the defaults
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = [bench_model(name, args, device) for name in args.models]
    common.report("bench_memory_format", rows, "training step: channels-last vs contiguous (images/s)")


if __name__ == "__main__":
    main()
