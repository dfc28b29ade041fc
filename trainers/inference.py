"""The one inference path: image decoding, preprocessing and prediction from a run folder.

The trainer's evaluator, batch prediction and both apps import this module, so every consumer decodes,
resizes and normalises an image the same way.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from timm.data import create_transform, resolve_data_config
from torch import nn

from runfolder import (
    CONFIG,
    HUB_PREFIX,
    LOCAL_PREFIX,
    ONNX_FILE,
    WEIGHTS,
    config_labels,
    config_temperature,
    read_config,
)
from trainers import custom_models  # noqa: F401  (registers the source studies' networks with timm)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}  # files read as images


def is_image_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def is_litter(name: str) -> bool:
    """A file or folder name that holds no one's images: hidden ones (`.ipynb_checkpoints`) and what macOS adds to
    archives (`__MACOSX/`, and the AppleDouble `._name.jpg` beside each file, which is no image)."""
    return name.startswith(".") or name == "__MACOSX"


def images_in(folder: Path) -> list[Path]:
    """The image files under `folder` (recursively, litter left out), sorted."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if is_image_file(p) and p.is_file()
                  and not any(is_litter(part) for part in p.relative_to(folder).parts))


# Decompression-bomb guard: 64 megapixels is far above any dataset image; PIL raises beyond 2x this.
MAX_PIXELS = 64_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

ImageSource = str | Path | bytes | np.ndarray | Image.Image


class ImageError(ValueError):
    """An input that cannot be turned into an image, with a message fit for a user."""


def load_image(source: ImageSource, mode: str = "RGB", min_side: int | None = None) -> Image.Image:
    """Decode any image a user may hand us into `mode` ('RGB' or 'L'), upright and fully loaded.

    Handles EXIF rotation, 16-bit and float images, CMYK, transparency (composited on white), palettes
    and animations (first frame); refuses empty, truncated, non-image and oversized inputs. With `min_side`
    (the side the caller resizes to next), a JPEG is decoded directly at the smallest of libjpeg's 1/2-1/8
    scales that keeps both sides >= 2 x min_side: much faster for photos far larger than the model input, and
    the resize that follows still reduces by 2x or more, so the result matches a full decode to within
    resampling noise.
    """
    name = str(source) if isinstance(source, str | Path) else type(source).__name__
    try:
        image = _open(source)
        # Refuse by the header's size before decoding: a 100-megapixel upload must not be decoded first.
        if image.width * image.height > MAX_PIXELS:
            raise ImageError(f"{name}: image too large ({image.width}x{image.height}, limit {MAX_PIXELS / 1e6:.0f} MP)")
        if min_side and image.format == "JPEG":
            image.draft(None, (2 * min_side, 2 * min_side))
        image.load()
    except ImageError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageError(f"{name}: image too large (limit {MAX_PIXELS / 1e6:.0f} megapixels)") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{name}: not a readable image ({err})") from err
    image = ImageOps.exif_transpose(image)
    return _to_mode(image, mode)


def _open(source: ImageSource) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        return Image.fromarray(source)
    if isinstance(source, bytes):
        if not source:
            raise ImageError("empty upload (0 bytes)")
        return Image.open(io.BytesIO(source))
    path = Path(source)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes)")
    return Image.open(path)


def _to_mode(image: Image.Image, mode: str) -> Image.Image:
    if getattr(image, "is_animated", False):
        image.seek(0)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit/float scans (X-rays often are): stretch the actual range to 8 bits rather than clip.
        array = np.asarray(image, dtype=np.float32)
        low, high = float(array.min()), float(array.max())
        array = (array - low) / (high - low or 1.0) * 255.0
        image = Image.fromarray(array.round().astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert(mode)


def image_mode(in_chans: int) -> str:
    """Grayscale sources become the channels the backbone expects."""
    return "L" if in_chans == 1 else "RGB"


def eval_transform(model: nn.Module | OnnxModel) -> Callable:
    """The backbone's own evaluation preprocessing (size, interpolation, crop, mean/std) from timm."""
    return create_transform(**resolve_data_config({}, model=model), is_training=False)


def eval_resize_side(data_config: dict) -> int:
    """The side timm's evaluation transform resizes to before its centre crop (the decode may stop there)."""
    return math.floor(max(data_config["input_size"][1:]) / data_config["crop_pct"])


def load_run_model(run: str | Path) -> nn.Module:
    """Load a fine-tuned model from a run folder (or `hf-hub:` id) with its labels, in eval mode.

    Goes through timm's own `local-dir:`/`hf-hub:` loaders so the run folder stays a plain timm repo.
    """
    run = str(run)
    name = run if run.startswith((HUB_PREFIX, LOCAL_PREFIX)) else f"{LOCAL_PREFIX}{Path(run).resolve()}"
    model = timm.create_model(name, pretrained=True)
    return model.eval()


def run_temperature(run: str | Path) -> float:
    """The softmax temperature stored with a run folder (or `hf-hub:` repo) at the end of training; 1.0 for runs
    written before calibration existed, so their probabilities stay as they were."""
    run = str(run)
    if run.startswith(HUB_PREFIX):
        return config_temperature(json.loads(hub_file(run, CONFIG).read_text(encoding="utf-8")))
    return config_temperature(read_config(Path(run.removeprefix(LOCAL_PREFIX))))


def hub_file(run: str, name: str) -> Path:
    """One file of an `hf-hub:<org>/<name>` run, through the Hub cache (timm's loader has usually fetched it)."""
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(run.removeprefix(HUB_PREFIX), name))


def label_names(model: nn.Module | OnnxModel) -> list[str]:
    """The class names a person reads (`runfolder.display_labels`: human names, also for older id-named runs)."""
    names = config_labels(getattr(model, "pretrained_cfg", {}) or {})
    return names or [str(i) for i in range(model.num_classes)]


@dataclass
class Prediction:
    probs: np.ndarray  # one row of class probabilities per image
    labels: list[str]
    latency_ms: float = 0.0
    errors: dict[int, str] = field(default_factory=dict)  # input index -> why it was not predicted

    def topk(self, row: int, k: int = 5) -> list[tuple[str, float]]:
        order = np.argsort(-self.probs[row])[:k]
        return [(self.labels[i], float(self.probs[row, i])) for i in order]


BACKENDS = ("torch", "onnx")


class OnnxModel:
    """An exported model.onnx run by onnxruntime, with what Predictor reads from a timm model:
    `pretrained_cfg` (labels, input size, mean/std: stored in the file's metadata) and a call from a
    preprocessed float batch to logits. So both backends share one preprocessing and one softmax."""

    def __init__(self, path: str | Path, device: str | torch.device = "cpu", threads: int | None = None):
        import onnxruntime as ort  # only the ONNX backend needs it

        device = torch.device(device)
        available = ort.get_available_providers()
        if device.type == "cuda" and "CUDAExecutionProvider" not in available:
            raise ValueError(f"--device cuda: this onnxruntime has no CUDA provider (it has {available}); "
                             "install onnxruntime-gpu or use --device cpu")
        providers = ["CUDAExecutionProvider"] * (device.type == "cuda") + ["CPUExecutionProvider"]
        self.path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: onnxruntime's default, one per core
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        meta = self.session.get_modelmeta().custom_metadata_map
        if "pretrained_cfg" not in meta:
            raise ValueError(f"{path}: no pretrained_cfg in its metadata; export it with python -m trainers.export")
        self.metadata = meta
        self.pretrained_cfg = json.loads(meta["pretrained_cfg"])
        self.num_classes = int(self.pretrained_cfg["num_classes"])
        self.input = self.session.get_inputs()[0]
        self.dtype = np.float16 if self.input.type == "tensor(float16)" else np.float32
        batch = self.input.shape[0]
        self.static_batch = batch if isinstance(batch, int) else None

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.detach().cpu().numpy().astype(self.dtype, copy=False)
        if self.static_batch is None:
            return torch.from_numpy(self._run(x)).float()
        # A static-batch export takes exactly `static_batch` images: run in slices, padding the last one.
        n, size = len(x), self.static_batch
        padded = np.concatenate([x, np.repeat(x[-1:], -n % size, axis=0)])
        out = [self._run(padded[i:i + size]) for i in range(0, len(padded), size)]
        return torch.from_numpy(np.concatenate(out)[:n]).float()

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input.name: x})[0]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def load_onnx_run(run: str | Path, device: str | torch.device = "cpu") -> OnnxModel:
    """model.onnx of a run folder (or `hf-hub:` repo); refuses one exported from other weights than the
    run's model.safetensors, whose predictions would silently differ from the PyTorch backend's."""
    run = str(run)
    if run.startswith(HUB_PREFIX):
        return OnnxModel(hub_file(run, ONNX_FILE), device)
    folder = Path(run.removeprefix(LOCAL_PREFIX))
    if not (folder / ONNX_FILE).is_file():
        raise FileNotFoundError(f"{folder / ONNX_FILE} not found: export it first with "
                                f"python -m trainers.export {folder}")
    model = OnnxModel(folder / ONNX_FILE, device)
    weights = folder / WEIGHTS
    exported_from = model.metadata.get("weights_sha256")
    if weights.is_file() and exported_from and exported_from != file_sha256(weights):
        raise ValueError(f"{folder / ONNX_FILE} was exported from other weights than {weights}; "
                         f"re-export it with python -m trainers.export {folder}")
    return model


class Predictor:
    """A loaded model plus its preprocessing: `Predictor.from_run(path).predict([img, ...])`.

    `model` is a timm model (backend "torch") or an OnnxModel (backend "onnx"; `self.model` is then None,
    as there is no torch module for Grad-CAM to hook). Probabilities are softmax(logits / temperature): `from_run`
    uses the run's fitted temperature unless `calibrated=False` (the labels are the same either way)."""

    def __init__(self, model: nn.Module | OnnxModel, device: str | torch.device = "cpu", temperature: float = 1.0):
        self.device = torch.device(device)
        self.temperature = temperature
        self._onnx = model if isinstance(model, OnnxModel) else None
        self.backend = "onnx" if self._onnx else "torch"
        self.model = None if self._onnx else model.eval().to(self.device)
        self.labels = label_names(model)
        self.transform = eval_transform(model)
        self.mode = image_mode(model.pretrained_cfg.get("input_size", (3,))[0])
        data_config = resolve_data_config({}, model=model)
        self.input_size: tuple[int, int, int] = tuple(data_config["input_size"])  # (C, H, W)
        self.min_side = eval_resize_side(data_config)

    @classmethod
    def from_run(cls, run: str | Path, device: str = "cpu", backend: str = "torch",
                 calibrated: bool = True) -> Predictor:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
        model = load_onnx_run(run, device) if backend == "onnx" else load_run_model(run)
        return cls(model, device, run_temperature(run) if calibrated else 1.0)

    def warm_up(self) -> None:
        """One forward pass on a blank input: the first call pays for allocation and kernel selection, so a
        caller that reports latency should warm the model when it loads it, not on a visitor's first image."""
        self.predict_tensor(torch.zeros(1, *self.input_size))

    def preprocess(self, source: ImageSource) -> torch.Tensor:
        return self.transform(load_image(source, self.mode, self.min_side))

    @torch.inference_mode()
    def predict_tensor(self, batch: torch.Tensor) -> torch.Tensor:
        logits = self._onnx(batch) if self._onnx else self.model(batch.to(self.device))
        return (logits.float() / self.temperature).softmax(dim=-1).cpu()

    def predict(self, sources: ImageSource | Sequence[ImageSource]) -> Prediction:
        """Predict one image or a list of them; undecodable ones get a row of NaN and an entry in `errors`."""
        if isinstance(sources, ImageSource):  # one image: a path string is not a sequence of characters
            sources = [sources]
        tensors, errors = {}, {}
        for i, source in enumerate(sources):
            try:
                tensors[i] = self.preprocess(source)
            except ImageError as err:
                errors[i] = str(err)
        probs = np.full((len(sources), len(self.labels)), np.nan, dtype=np.float32)
        start = time.perf_counter()
        if tensors:
            out = self.predict_tensor(torch.stack(list(tensors.values())))
            probs[list(tensors)] = out.numpy()
        latency = (time.perf_counter() - start) * 1000
        return Prediction(probs, self.labels, latency, errors)
