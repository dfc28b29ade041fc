"""`--strategy linear-probe` on cached features: the frozen backbone runs once per image, the head trains many epochs.

A frozen backbone in eval mode (batch-norm statistics kept, dropout off) gives each image the same features every
epoch, unless the image is augmented. So the classifier's input is computed once for every image of every split and
kept in memory, and each epoch trains the head alone on it: one backbone pass in all instead of one per epoch, and
an epoch of the head takes a fraction of a second. The price is the usual linear-evaluation protocol: the head
sees each image's evaluation view (resize and centre crop), not a new random augmentation every epoch.

With `--feature-cache-dir DIR` the features are also saved there, keyed by the frozen weights, the preprocessing
and the sample ids, so the next linear probe of the same backbone on the same images (another seed, learning rate
or head) skips the backbone entirely.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import BatchSampler

import runfolder as R
from trainers.custom_models import PooledHead
from trainers.progress import progress


def pools_first(classifier: nn.Module) -> bool:
    """A head that starts with its own global pool (the studies' heads): its cached input is the pooled vector."""
    return isinstance(classifier, PooledHead)


class FeatureHead(nn.Module):
    """The part of `model` that learns in a linear probe, applied to cached features.

    The classifier's input is cached after the model's own pre-classifier dropout, which is off in eval mode,
    so that dropout (timm's `drop_rate`) is applied here instead. A head that pools first (the studies' heads in
    `trainers/custom_models.py`) is fed features pooled to 1x1, which its own pool passes through unchanged.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.classifier = model.get_classifier()
        self.drop = nn.Dropout(0.0 if pools_first(self.classifier) else float(getattr(model, "drop_rate", 0.0)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.drop(features))


def cacheable(model: nn.Module) -> str | None:
    """Why the features of `model` cannot be cached (None when they can): the classifier must take a vector, or
    pool its input first (a head with a convolution before its pool, like mini-Xception's, needs the whole map)."""
    classifier = model.get_classifier()
    if isinstance(classifier, nn.Linear) or pools_first(classifier):
        return None
    return f"its classifier ({type(classifier).__name__}) does not start from a pooled vector"


@torch.inference_mode()
def extract(model: nn.Module, loader: Iterable, device: torch.device, desc: str) -> dict[str, torch.Tensor]:
    """The classifier's input for every readable sample of `loader`, its label and its index in the split, in
    split order, on the CPU."""
    classifier = model.get_classifier()
    pooled_first = pools_first(classifier)
    captured: list[torch.Tensor] = []

    def capture(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0]
        captured.append(classifier.global_pool(x)[..., None, None] if pooled_first else x)

    was_training = model.training
    model.eval()
    hook = classifier.register_forward_pre_hook(capture)
    features, labels, indices = [], [], []
    try:
        for batch in progress(loader, f"caching features: {desc}", unit="batch"):
            if batch is None:
                continue
            images, batch_labels, batch_indices = batch
            model(images.to(device))
            features.append(captured.pop().float().cpu())
            labels.append(batch_labels)
            indices.append(batch_indices)
    finally:
        hook.remove()
        model.train(was_training)
    order = torch.cat(indices).argsort()
    return {"features": torch.cat(features)[order], "labels": torch.cat(labels)[order],
            "indices": torch.cat(indices)[order]}


def cache_key(model: nn.Module, data_config: dict, sample_ids: dict[str, list[str]]) -> str:
    """What the cached features depend on: the frozen weights, the preprocessing and the images."""
    digest = hashlib.sha256()
    classifier = model.get_classifier()
    head = next(name for name, module in model.named_modules() if module is classifier) + "."
    for name, tensor in model.state_dict().items():
        if not name.startswith(head):  # the head learns; its weights do not change the features
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    digest.update(json.dumps({k: str(v) for k, v in sorted(data_config.items())}).encode())
    digest.update(json.dumps(sample_ids, sort_keys=True).encode())
    return digest.hexdigest()[:32]


KINDS = ("features", "labels", "indices")


@dataclass
class FeatureCache:
    """Per split (`train`, `val`, and `test` when there is one): the classifier's input for each readable sample,
    its label, and its index in the split (an unreadable image skipped by --skip-corrupt has no row)."""

    features: dict[str, torch.Tensor]
    labels: dict[str, torch.Tensor]
    indices: dict[str, torch.Tensor]
    seconds: float  # what computing them took (read from a cache file: what it took when it was written)
    read: bool = False  # read from a --feature-cache-dir file, not computed in this run

    @property
    def dim(self) -> int:
        return next(iter(self.features.values()))[0].numel()

    @classmethod
    def build(cls, model: nn.Module, loaders: dict[str, object], device: torch.device,
              cache_file: Path | None = None) -> FeatureCache:
        """Features of every split's loader, read from `cache_file` when it holds them, else computed (and saved
        there when a file is given)."""
        read = cache_file is not None and cache_file.is_file()
        if read:
            with safe_open(cache_file, "pt") as f:
                tensors, seconds = {k: f.get_tensor(k) for k in f.keys()}, float(f.metadata()["seconds"])  # noqa: SIM118
            print(f"feature cache: read {cache_file}")
        else:
            started = time.perf_counter()
            tensors = {f"{split}.{kind}": t for split, loader in loaders.items()
                       for kind, t in extract(model, loader, device, split).items()}
            seconds = time.perf_counter() - started
            if cache_file is not None:
                with R.atomic_path(cache_file) as tmp:
                    save_file({k: t.contiguous() for k, t in tensors.items()}, str(tmp),
                              metadata={"seconds": f"{seconds:.1f}"})
        features, labels, indices = ({split: tensors[f"{split}.{kind}"] for split in loaders} for kind in KINDS)
        return cls(features, labels, indices, seconds, read)

    def batches(self, split: str, order: list[int], batch_size: int, drop_last: bool = False) -> CachedBatches:
        return CachedBatches(self, split, order, batch_size, drop_last)


@dataclass
class CachedBatches:
    """(features, labels, indices) batches in `order`, as the training and evaluation loaders yield images."""

    cache: FeatureCache
    split: str
    order: list[int]
    batch_size: int
    drop_last: bool = False

    def __len__(self) -> int:
        return len(BatchSampler(self.order, self.batch_size, self.drop_last))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        features, labels = self.cache.features[self.split], self.cache.labels[self.split]
        for batch in BatchSampler(self.order, self.batch_size, self.drop_last):  # as a DataLoader over `order`
            indices = torch.tensor(batch)
            yield features[indices], labels[indices], indices
