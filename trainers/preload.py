"""`--pipeline preload`: decode the training images once into uint8 memory on the training device, augment there.

The default pipeline (`--pipeline workers`) decodes and augments every image again on every epoch in DataLoader
worker processes. Small-image datasets (CIFAR-10 32 px, FER2013 48 px, Tiny ImageNet 64 px, chest X-ray at
reduced size) fit in device memory as uint8, so this pipeline decodes each image once, through the same
shared decode path, and then augments whole batches on the device: `--aug randaug`/`augmix` with torchvision's
batched RandAugment/AugMix, then random-resized crop, horizontal flip and normalisation in one `grid_sample`.
On a GPU the host does no per-image work at all; on a CPU no worker processes compete with the model step for
cores.

Batches depend only on (seed, epoch, step), so a run resumed mid-epoch sees exactly the batches it would have.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import BatchSampler, DataLoader
from torchvision import transforms

from trainers.augment import Augmentation
from trainers.data import DataError, ImageDataset, Sample, collate_skip_none
from trainers.progress import progress

PIPELINES = {  # the --pipeline choices
    "workers": "decode + timm transforms every epoch in DataLoader workers",
    "preload": "decode once into uint8 memory on the training device, augment whole batches there",
}

# Stored side = min(native side, img_size x this): a crop of the smallest area (0.6) still has full resolution.
HEADROOM = 1.3
MEMORY_FRACTION = 0.5  # of the free device memory (GPU) or of the machine's RAM (CPU) the images may take
POLICY_GROUP = 8  # images that share one draw of the RandAugment/AugMix operations (one batched call per group)


@dataclass
class PreloadedImages:
    images: torch.Tensor  # (N, C, S, S) uint8 on the training device
    labels: torch.Tensor  # (N,) int64 on the training device
    samples: list[Sample]  # the decoded samples, in order (unreadable ones skipped with --skip-corrupt)


def store_side(samples: list[Sample], img_size: int, probe: int = 64) -> int:
    """The square side images are stored at: their native size when small, else img_size x HEADROOM."""
    step = max(1, len(samples) // probe)
    sides = []
    for sample in samples[::step][:probe]:
        try:
            with Image.open(sample.source) if isinstance(sample.source, str) else Image.fromarray(sample.source) as im:
                sides.append(min(im.size))
        except OSError:
            continue  # unreadable: the decode pass names it (or skips it)
    native = max(sides, default=img_size)
    return min(native, math.ceil(img_size * HEADROOM))


def memory_budget(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * MEMORY_FRACTION)
    return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * MEMORY_FRACTION)


def preload(samples: list[Sample], img_size: int, mode: str, device: torch.device, workers: int = 2,
            skip_corrupt: bool = False) -> PreloadedImages:
    """Decode every sample once (DataLoader workers, progress bar) into a uint8 tensor on `device`."""
    side = store_side(samples, img_size)
    channels = 1 if mode == "L" else 3
    needed = len(samples) * channels * side * side
    if needed > memory_budget(device):
        raise DataError(f"--pipeline preload: {len(samples)} images at {side}x{side} need {needed / 2**30:.1f} GiB, "
                        f"more than {MEMORY_FRACTION:.0%} of the {device.type} memory; use --pipeline workers "
                        "(or fewer images, --max-train-samples)")
    decode = transforms.Compose([transforms.Resize(side, interpolation=transforms.InterpolationMode.BICUBIC),
                                 transforms.CenterCrop(side), transforms.PILToTensor()])
    loader = DataLoader(ImageDataset(samples, decode, mode, skip_corrupt, min_side=side), batch_size=256,
                        num_workers=workers, collate_fn=collate_skip_none)
    images = torch.empty((len(samples), channels, side, side), dtype=torch.uint8, device=device)
    kept: list[int] = []
    for batch in progress(loader, f"preloading {len(samples)} images at {side} px", unit="batch"):
        if batch is None:
            continue
        pixels, _, indices = batch
        images[len(kept):len(kept) + len(pixels)] = pixels.to(device)
        kept.extend(indices.tolist())
    if not kept:
        raise DataError("--pipeline preload: no readable training images")
    kept_samples = [samples[i] for i in kept]
    labels = torch.tensor([s.label for s in kept_samples], dtype=torch.int64, device=device)
    return PreloadedImages(images[:len(kept)], labels, kept_samples)


def crop_flip_normalise(images: torch.Tensor, size: int, augment: Augmentation, mean: tuple[float, ...],
                        std: tuple[float, ...], generator: torch.Generator) -> torch.Tensor:
    """Per-image random-resized crop + horizontal flip (`augment`'s scale, ratio and flip probability) +
    normalisation of a uint8 batch, in one grid_sample.

    Written here rather than taken from a library: torchvision's v2 transforms draw one set of parameters per
    batch, and kornia (per-image parameters) is not on the GPU machines. The crop follows timm's
    RandomResizedCrop (area fraction uniform in `scale`, aspect ratio log-uniform in `ratio`), with the sides
    clamped to the image instead of timm's ten rejection-sampling attempts.
    """
    n, ratio = len(images), augment.ratio
    area = torch.empty(n).uniform_(*augment.scale, generator=generator)
    log_ratio = torch.empty(n).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    width = (area * log_ratio.exp()).sqrt().clamp(max=1.0)  # fractions of the image side
    height = (area / log_ratio.exp()).sqrt().clamp(max=1.0)
    centre_x = (torch.rand(n, generator=generator) * (1 - width) + width / 2) * 2 - 1  # in grid units, [-1, 1]
    centre_y = (torch.rand(n, generator=generator) * (1 - height) + height / 2) * 2 - 1
    flip = torch.where(torch.rand(n, generator=generator) < augment.hflip, -1.0, 1.0)
    zero = torch.zeros(n)
    theta = torch.stack([torch.stack([width * flip, zero, centre_x], 1),
                         torch.stack([zero, height, centre_y], 1)], 1)
    pixels = images.float()
    grid = F.affine_grid(to_device(theta, images.device), [n, pixels.shape[1], size, size], align_corners=False)
    out = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="border", align_corners=False)
    mean_t, std_t = _normaliser(tuple(mean), tuple(std), images.device)
    return (out - mean_t) / std_t


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small host tensor onto `device` without making the host wait. A blocking copy to a GPU synchronises the
    stream: the host could not queue the next step's kernels while the GPU still runs this one."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)  # pinned: the caching host allocator keeps it alive


@functools.lru_cache(maxsize=8)
def _normaliser(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> tuple[torch.Tensor, ...]:
    """Mean and std in 0-255 units on `device`, made once rather than copied to the device every batch."""
    return tuple(torch.tensor(v, device=device).view(1, -1, 1, 1) * 255 for v in (mean, std))


@dataclass
class DeviceAugment:
    """The preloaded images plus what `--aug` asks of them: the stand-in for the timm training transform."""

    store: PreloadedImages
    size: int
    augment: Augmentation
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        self.policy = self.augment.batched_policy()

    def batch(self, indices: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        on_device = to_device(indices, self.store.images.device)
        images = self.store.images[on_device]
        if self.policy is not None:
            policy_seed = int(torch.randint(2**62, (1,), generator=generator))
            with torch.random.fork_rng(devices=[]):  # torchvision draws its operations from the global generator
                torch.manual_seed(policy_seed)
                images = torch.cat([self.policy(group) for group in images.split(POLICY_GROUP)])
        images = crop_flip_normalise(images, self.size, self.augment, self.mean, self.std, generator)
        return images, self.store.labels[on_device]


class PreloadedBatches:
    """Iterates (images, labels, indices) like the workers' DataLoader, built on the device from `order`."""

    def __init__(self, augment: DeviceAugment, order: list[int], batch_size: int, drop_last: bool, seed: int,
                 first_batch: int = 0) -> None:
        self.augment, self.order, self.batch_size, self.drop_last = augment, order, batch_size, drop_last
        self.seed, self.first_batch = seed, first_batch
        self.sampler = order  # as on a DataLoader; benchmarks count images by it

    def __len__(self) -> int:
        return len(BatchSampler(self.order, self.batch_size, self.drop_last))

    def __iter__(self):
        for b, batch in enumerate(BatchSampler(self.order, self.batch_size, self.drop_last)):  # as a DataLoader
            indices = torch.tensor(batch)
            # Seeded by (seed, batch number in the epoch): a resumed run draws the same crops.
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.first_batch + b)
            images, labels = self.augment.batch(indices, generator)
            yield images, labels, indices
