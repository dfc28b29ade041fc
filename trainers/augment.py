"""The `--aug` choices: each one an `Augmentation` that yields both of its forms.

- `timm_args()`: the arguments of timm's `create_transform` (the `workers` pipeline, one PIL image at a time);
- `batched_policy()`: torchvision's batched counterpart of the timm policy (the `preload` pipeline, whole batches
  on the device), applied before the random-resized crop, flip and normalisation of `crop_flip_normalise`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torchvision is imported by the factories below, so that the choices stay light to import
    from torchvision.transforms import v2

TIMM_RATIO = (3 / 4, 4 / 3)  # timm's and torchvision's default aspect-ratio range of the random-resized crop


@dataclass(frozen=True)
class Augmentation:
    name: str
    help: str
    scale: tuple[float, float] = (0.6, 1.0)  # random-resized-crop area range
    ratio: tuple[float, float] = TIMM_RATIO
    hflip: float = 0.5
    timm_policy: str | None = None  # timm's auto_augment string
    batched: Callable[[], v2.Transform] | None = None  # torchvision's batched form of `timm_policy`

    def timm_args(self) -> dict[str, Any]:
        return {"scale": self.scale, "ratio": self.ratio, "hflip": self.hflip, "auto_augment": self.timm_policy}

    def batched_policy(self) -> v2.Transform | None:
        return self.batched() if self.batched else None


def _rand_augment() -> v2.Transform:
    from torchvision.transforms import v2

    return v2.RandAugment(num_ops=2, magnitude=27)  # timm's m9 of 10 = 27 of torchvision's 30 steps


def _augmix() -> v2.Transform:
    from torchvision.transforms import v2

    return v2.AugMix(severity=5, mixture_width=4, chain_depth=2)


AUGMENTATIONS = {aug.name: aug for aug in (
    Augmentation("none", "no augmentation", scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=0.0),
    Augmentation("light", "flip + random-resized crop"),
    Augmentation("randaug", "timm rand-m9-mstd0.5", timm_policy="rand-m9-mstd0.5", batched=_rand_augment),
    Augmentation("augmix", "timm augmix-m5-w4-d2", timm_policy="augmix-m5-w4-d2", batched=_augmix),
)}  # fmt: skip
