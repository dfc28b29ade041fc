"""ONNX Runtime vs PyTorch on the CPU: prediction latency for batch 1 and batch 32 (p50/p95).

    python benchmarks/bench_onnx.py                       # EfficientNet-Lite0 and ResNet50 at 224 px
    python benchmarks/bench_onnx.py runs/<id> ... [--batch-sizes 1 32] [--repeats 10] [--threads 1]

Without run folders it builds two (Lite0 with its offline ImageNet weights, ResNet50 randomly initialised:
latency does not depend on the weights' values) and exports them with `trainers.export` (validated on the
repository's sample images); a given run folder is exported only when it has no model.onnx yet. Both
backends run through the same `Predictor.predict_tensor` (logits and softmax) on the same preprocessed batch,
so decoding and resizing, identical for both, are left out. Prints a table with the PyTorch/ONNX ratio and
writes benchmarks/out/bench_onnx.csv.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import common
import onnxruntime
import torch
from timm.data import resolve_data_config

import runfolder as R
from trainers.export import export_run
from trainers.inference import ONNX_FILE, OnnxModel, Predictor
from trainers.models import create_backbone, is_offline_pretrained, resolve_model_name

SAMPLE_IMAGES = common.REPO / "data" / "sample" / "cifar10" / "val"
DEFAULT_MODELS = ("efficientnet_lite0", "resnet50")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", type=Path, help="run folders (default: build Lite0 and ResNet50 ones)")
    parser.add_argument("--img-size", type=int, default=224, help="input size of the built run folders")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per cell")
    parser.add_argument("--threads", type=int, help="CPU threads of both backends (default: each library's own "
                        "default, one per core; on a busy machine 1 gives steadier figures)")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="stop timing a cell after this long")
    return parser.parse_args()


def build_run(root: Path, name: str, img_size: int) -> Path:
    """A run folder written by the trainer's writer; weights offline where they exist, else random."""
    model, _ = create_backbone(name, 10, pretrained=is_offline_pretrained(resolve_model_name(name)))
    data_config = resolve_data_config({"img_size": img_size}, model=model)
    run = root / name
    run.mkdir(parents=True)
    R.write_model(run, model.eval(), [f"class{i}" for i in range(10)], None, data_config)
    return run


def ensure_onnx(run: Path) -> None:
    if not (run / ONNX_FILE).is_file():
        export_run(run, images=[str(SAMPLE_IMAGES)], max_images=16)


def time_backends(backends: dict[str, Predictor], batch: torch.Tensor, repeats: int,
                  max_seconds: float) -> dict[str, list[float]]:
    """Seconds per call for each backend, after two warm-up calls each (allocator, ONNX Runtime's first-run
    optimisations). The backends take turns call by call, so a burst of load from other processes hits both."""
    for predictor in backends.values():
        for _ in range(2):
            predictor.predict_tensor(batch)
    seconds: dict[str, list[float]] = {name: [] for name in backends}
    deadline = time.perf_counter() + max_seconds
    for done in range(repeats):
        if done >= 3 and time.perf_counter() > deadline:
            break
        for name, predictor in backends.items():
            seconds[name].append(common.timed(lambda p=predictor: p.predict_tensor(batch), torch.device("cpu")))
    return seconds


def bench_run(run: Path, batch_sizes: list[int], repeats: int, max_seconds: float,
              threads: int | None) -> list[dict]:
    backends = {"torch": Predictor.from_run(run), "onnx": Predictor(OnnxModel(run / ONNX_FILE, threads=threads))}
    image = backends["torch"].preprocess(next(SAMPLE_IMAGES.rglob("*.jpg")))
    rows = []
    for size in batch_sizes:
        batch = image.expand(size, *image.shape).contiguous()
        timings = time_backends(backends, batch, repeats, max_seconds)
        cells = {name: common.percentiles(seconds) for name, seconds in timings.items()}
        rows.append({
            "model": R.read_config(run)["architecture"], "input": "x".join(map(str, image.shape)), "batch": size,
            "torch_p50_ms": cells["torch"]["p50_ms"], "torch_p95_ms": cells["torch"]["p95_ms"],
            "onnx_p50_ms": cells["onnx"]["p50_ms"], "onnx_p95_ms": cells["onnx"]["p95_ms"],
            "torch/onnx_p50": cells["torch"]["p50_ms"] / cells["onnx"]["p50_ms"],
            "onnx_img_s": size / cells["onnx"]["p50_ms"] * 1000, "calls": len(timings["onnx"]),
        })
    return rows


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp:
        runs = args.runs or [build_run(Path(tmp), name, args.img_size) for name in DEFAULT_MODELS]
        for run in runs:
            ensure_onnx(run)
        if args.threads:
            torch.set_num_threads(args.threads)
        rows = [row for run in runs
                for row in bench_run(run, args.batch_sizes, args.repeats, args.max_seconds, args.threads)]
    threads = args.threads or "default"
    header = (f"ONNX Runtime {onnxruntime.__version__} vs PyTorch {torch.__version__} on "
              f"{common.hardware(torch.device('cpu'))}, threads {threads}, load average {common.load_average()} "
              "(ratio > 1: ONNX Runtime is faster)")
    common.report("bench_onnx", rows, header)


if __name__ == "__main__":
    main()
