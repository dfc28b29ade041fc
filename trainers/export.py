"""ONNX export of a run folder, validated against PyTorch on real images.

    python -m trainers.export RUN_DIR [--opset 18] [--dynamic-batch|--static-batch] [--half] [--images PATH...]

Writes RUN_DIR/model.onnx (input `input`: N x C x H x W preprocessed floats, output `logits`) with the labels
and the preprocessing in its metadata_props: `pretrained_cfg` (timm's config, what
`Predictor.from_run(run, backend="onnx")` builds its transform from), and for other runtimes `labels`,
`input_size`, `mean`, `std`, `interpolation`, `crop_pct`, `crop_mode`; plus `weights_sha256` of the
model.safetensors it was exported from.

The file is only put in place after onnxruntime reproduced the PyTorch model on real images - the run's
evaluation images when its data is reachable (train_config.yaml), else those given with --images: float32
must agree on every top-1 with probabilities within 1e-4, float16 within 1e-2. A dynamic-batch model is
run with batch 1 and batch 7.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from timm.data import resolve_data_config
from torch import nn

from runfolder import CONFIG, TRAIN_CONFIG, WEIGHTS, atomic_path
from trainers import data as D
from trainers.inference import (
    ONNX_FILE,
    ImageError,
    ImageSource,
    OnnxModel,
    Predictor,
    file_sha256,
    label_names,
    load_run_model,
)
from trainers.predict import expand_inputs

DEFAULT_OPSET = 18
TOLERANCE = {"float32": 1e-4, "float16": 1e-2}  # max |p_onnx - p_torch| over all images and classes


class ExportError(RuntimeError):
    """A model that cannot be exported or whose export does not reproduce PyTorch, with the reason."""


@dataclass
class Validation:
    images: int
    max_abs_diff: float
    top1_agreement: float
    batch_sizes: list[int]
    tolerance: float
    exact_top1: bool

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance and (self.top1_agreement == 1.0 or not self.exact_top1)

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        top1 = "required identical" if self.exact_top1 else "reported"
        return (f"validation on {self.images} images, batch sizes {', '.join(map(str, self.batch_sizes))}: "
                f"max |p_onnx - p_torch| = {self.max_abs_diff:.2e} (tolerance {self.tolerance:.0e}), "
                f"top-1 agreement {self.top1_agreement:.2%} ({top1}) -> {verdict}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m trainers.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset version")
    batch = parser.add_mutually_exclusive_group()
    batch.add_argument("--dynamic-batch", action="store_true", default=True, help="any batch size (default)")
    batch.add_argument("--static-batch", dest="dynamic_batch", action="store_false",
                       help="exactly --batch-size images per call")
    parser.add_argument("--batch-size", type=int, default=1, help="the batch size of a --static-batch model")
    parser.add_argument("--half", action="store_true", help="float16 weights and input (smaller, GPU-friendly)")
    parser.add_argument("--images", nargs="+", help="validation images (files, directories, .txt lists); "
                        "default: the run's evaluation images")
    parser.add_argument("--max-images", type=int, default=64, help="validation images to use at most")
    return parser.parse_args(argv)


def validation_images(run_dir: Path, given: list[str] | None, limit: int) -> tuple[list[ImageSource], str]:
    """Up to `limit` real images: those given, else the run's evaluation split (class proportions kept)."""
    if given:
        paths = expand_inputs(given)
        return paths[:limit], f"{min(limit, len(paths))} of the given images"
    from trainers.config import ConfigError, TrainConfig, load_yaml
    from trainers.finetune import prepare_data

    try:
        cfg = TrainConfig(**load_yaml(run_dir / TRAIN_CONFIG))
        splits = prepare_data(cfg)
    except (ConfigError, D.DataError) as err:
        raise ExportError(f"the run's data is not reachable ({err}); pass validation images with --images") from None
    samples = D.subsample(splits.test or splits.val, limit, cfg.seed)
    return [s.source for s in samples], f"{len(samples)} images of the run's {splits.eval_split} split ({cfg.dataset})"


def preprocess_all(predictor: Predictor, sources: list[ImageSource]) -> torch.Tensor:
    tensors = []
    for source in sources:
        try:
            tensors.append(predictor.preprocess(source))
        except ImageError as err:
            print(f"skipping validation image: {err}")
    if not tensors:
        raise ExportError("no readable validation images")
    return torch.stack(tensors)


# ------------------------------------------------------------------------------------------------- export


def export_onnx(model: nn.Module, example: torch.Tensor, dynamic: bool, opset: int) -> tuple[onnx.ModelProto, str]:
    """The model as ONNX and the exporter that made it: torch.export-based first (the supported one, which
    also handles shape-dependent code such as VGG's small-input pooling), else the TorchScript tracer."""
    reasons = []
    for name, exporter in (("dynamo", _export_dynamo), ("torchscript", _export_torchscript)):
        try:
            with tempfile.TemporaryDirectory() as tmp:
                exporter(model, example, Path(tmp) / ONNX_FILE, dynamic, opset)
                proto = onnx.load(Path(tmp) / ONNX_FILE)
        except Exception as err:  # any exporter failure is a reason to try the next one
            reasons.append(f"{name}: {_reason(err)}")
            continue
        for reason in reasons:
            print(f"note: {reason}; used the {name} exporter")
        return proto, name
    raise ExportError("cannot export to ONNX:\n  " + "\n  ".join(reasons))


def _export_dynamo(model: nn.Module, example: torch.Tensor, path: Path, dynamic: bool, opset: int) -> None:
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    torch.onnx.export(model, (example,), path, dynamo=True, opset_version=opset, input_names=["input"],
                      output_names=["logits"], dynamic_shapes=shapes, external_data=False, verbose=False)


def _export_torchscript(model: nn.Module, example: torch.Tensor, path: Path, dynamic: bool, opset: int) -> None:
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic else None
    torch.onnx.export(model, (example,), path, dynamo=False, opset_version=opset, input_names=["input"],
                      output_names=["logits"], dynamic_axes=axes)


def _reason(err: BaseException) -> str:
    """The root cause's first line: the exporters wrap it in pages of generic advice."""
    while err.__cause__ is not None:
        err = err.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()  # the dynamo exporter colours its messages
    return f"{type(err).__name__}: {text.splitlines()[0] if text else '(no message)'}"


def metadata(model: nn.Module, precision: str, exporter: str, weights_sha256: str | None) -> dict[str, str]:
    """What a consumer needs besides the graph: labels and preprocessing (JSON values), and provenance."""
    cfg = {k: v for k, v in model.pretrained_cfg.items() if k not in ("file", "source")}  # no local paths
    data = resolve_data_config({}, model=model)
    props = {
        "pretrained_cfg": json.dumps(cfg),
        "labels": json.dumps(label_names(model)),
        "architecture": str(cfg.get("architecture", type(model).__name__)),
        "precision": precision,
        "exporter": exporter,
        **{key: json.dumps(data[key]) for key in ("input_size", "mean", "std", "crop_pct")},
        **{key: data[key] for key in ("interpolation", "crop_mode")},
    }
    if weights_sha256:
        props["weights_sha256"] = weights_sha256
    return props


# --------------------------------------------------------------------------------------------- validation


def validate(reference: Predictor, path: Path, batch: torch.Tensor, precision: str) -> Validation:
    """ONNX Runtime vs the float32 PyTorch model on the same preprocessed images. A dynamic model runs them
    as one batch of 1 and then batches of 7 (tiling the images to at least 8), so both shapes really run."""
    exported = OnnxModel(path)
    if exported.static_batch is None:
        batch = _tile(batch, 1 + 7)
        parts = [batch[:1], *batch[1:].split(7)]
        sizes = sorted({len(part) for part in parts})
    else:
        parts, sizes = [batch], [exported.static_batch]  # OnnxModel feeds it in slices of its batch size
    expected = reference.predict_tensor(batch)
    onnx_predictor = Predictor(exported)
    got = torch.cat([onnx_predictor.predict_tensor(part) for part in parts])
    return Validation(
        images=len(batch), max_abs_diff=float((got - expected).abs().max()),
        top1_agreement=float((got.argmax(-1) == expected.argmax(-1)).float().mean()), batch_sizes=sizes,
        tolerance=TOLERANCE[precision], exact_top1=precision == "float32")


def _tile(batch: torch.Tensor, n: int) -> torch.Tensor:
    """At least `n` images: the batch repeated as often as needed."""
    return batch.repeat(-(-n // len(batch)), 1, 1, 1) if len(batch) < n else batch


# ------------------------------------------------------------------------------------------------ command


@dataclass(frozen=True)
class ExportOptions:
    """How the ONNX file is built (the CLI's flags)."""

    opset: int = DEFAULT_OPSET
    dynamic: bool = True  # a dynamic batch axis; else a static batch of `batch_size`
    batch_size: int = 1
    half: bool = False  # float16 weights and inputs

    @property
    def precision(self) -> str:
        return "float16" if self.half else "float32"

    def __str__(self) -> str:
        batch = "dynamic batch" if self.dynamic else f"static batch {self.batch_size}"
        return f"{self.precision} (opset {self.opset}, {batch})"


def export_run(run_dir: Path, options: ExportOptions = ExportOptions(), images: list[str] | None = None,
               max_images: int = 64) -> Validation:
    """Export, validate, and only then install RUN_DIR/model.onnx. Raises ExportError with the reason."""
    model = load_run_model(run_dir)
    reference = Predictor(model)
    sources, described = validation_images(run_dir, images, max_images)
    batch = preprocess_all(reference, sources)
    print(f"validation images: {described}")
    # Real images as the example; 2 of them for a dynamic axis, as torch.export turns a batch of 1 into a constant.
    example = _tile(batch, 2)[:2] if options.dynamic else _tile(batch[:1], options.batch_size)
    export_model = copy.deepcopy(model).half() if options.half else model
    started = time.perf_counter()
    proto, exporter = export_onnx(export_model, example.half() if options.half else example, options.dynamic,
                                  options.opset)
    weights = run_dir / WEIGHTS
    onnx.helper.set_model_props(proto, metadata(model, options.precision, exporter,
                                                file_sha256(weights) if weights.is_file() else None))
    target = run_dir / ONNX_FILE
    with atomic_path(target) as tmp:
        onnx.save_model(proto, tmp)
        print(f"exported {options} with the {exporter} exporter: {tmp.stat().st_size / 1e6:.1f} MB in "
              f"{time.perf_counter() - started:.1f} s")
        result = validate(reference, tmp, batch, options.precision)
        print(result)
        if not result.ok:
            raise ExportError(f"the ONNX model does not reproduce PyTorch ({result}); {target} not written")
    print(f"wrote {target}")
    return result


def main(argv: list[str] | None = None) -> Validation:
    args = parse_args(argv)
    if not (args.run_dir / CONFIG).is_file():
        raise SystemExit(f"error: {args.run_dir} is not a run folder (no {CONFIG})")
    try:
        options = ExportOptions(args.opset, args.dynamic_batch, args.batch_size, args.half)
        return export_run(args.run_dir, options, args.images, args.max_images)
    except ExportError as err:
        raise SystemExit(f"error: {err}") from None



def cli() -> None:
    """The `arena-export` console script: `main` without its return value (which would become the exit status)."""
    main()


if __name__ == "__main__":
    cli()
