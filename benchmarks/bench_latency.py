"""Inference latency at batch 1 on the CPU: the bare model forward against the app's full predict path.

    python benchmarks/bench_latency.py                        # every seed backbone and report network
    python benchmarks/bench_latency.py --models efficientnet_lite0 resnet50 --runs 50 --image photo.jpg --threads 1

bare - `model(x)` in inference mode on an already preprocessed 1-image tensor;
full - `trainers.inference.Predictor.predict([path])`, what the apps call: decode the file, preprocess with the
       backbone's own eval transform, forward, softmax.
The two alternate run by run (so both see the same load from other processes); p50/p95 over `--runs`, and
full p50 / bare p50 as the ratio (target <= 1.2). Weights are random (latency does not depend on them); the
image is a real photo (matplotlib's grace_hopper.jpg, 512x600) unless --image is given.
Writes benchmarks/out/bench_latency.csv.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import common
import matplotlib
import timm
import torch

from trainers.inference import Predictor
from trainers.models import resolve_model_name

MODELS = ["efficientnet_lite0", "resnet50", "resnet101", "resnet152", "vgg16", "inception_v3",
          "et_net", "xray_cnn3", "mini_xception", "resnet50_gmp_bn_head"]
PHOTO = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def bench_model(name: str, image: Path, runs: int) -> dict:
    arch = resolve_model_name(name).split(".")[0]
    predictor = Predictor(timm.create_model(arch, num_classes=10), device="cpu")
    x = predictor.preprocess(image).unsqueeze(0)

    @torch.inference_mode()
    def bare() -> None:
        predictor.model(x)

    def full() -> None:
        predictor.predict([image])

    bare(), full()  # warm-up
    times: dict[str, list[float]] = {"bare": [], "full": []}
    for _ in range(runs):
        times["bare"].append(common.timed(bare, predictor.device))
        times["full"].append(common.timed(full, predictor.device))
    bare_stats, full_stats = common.percentiles(times["bare"]), common.percentiles(times["full"])
    print(f"{arch}: bare p50 {bare_stats['p50_ms']:.1f} ms, full p50 {full_stats['p50_ms']:.1f} ms", flush=True)
    return {
        "model": arch, "input": "x".join(map(str, x.shape[1:])),
        "bare_p50_ms": bare_stats["p50_ms"], "bare_p95_ms": bare_stats["p95_ms"],
        "full_p50_ms": full_stats["p50_ms"], "full_p95_ms": full_stats["p95_ms"],
        "ratio_p50": full_stats["p50_ms"] / bare_stats["p50_ms"],
        "hardware": common.hardware(predictor.device), "load_1min": common.load_average(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--image", type=Path, default=PHOTO)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice, all cores)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [bench_model(name, args.image, args.runs) for name in args.models]
    common.report("bench_latency", rows, f"batch-1 CPU latency: bare forward vs full predict path ({args.image.name})")


if __name__ == "__main__":
    main()
