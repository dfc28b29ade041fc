"""`--pipeline preload`: images decoded once into device memory, cropped/flipped/normalised there per batch."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from conftest import SAMPLE, train_tiny

from trainers import preload as P
from trainers.augment import AUGMENTATIONS
from trainers.config import parse_config
from trainers.data import DataError, load_dataset
from trainers.finetune import Distributed, make_loader, prepare_data, training_transform

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def unnormalise(images: torch.Tensor) -> torch.Tensor:
    return images * torch.tensor(STD).view(1, 3, 1, 1) * 255 + torch.tensor(MEAN).view(1, 3, 1, 1) * 255


def test_whole_image_crop_and_flip_are_exact():
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    whole = AUGMENTATIONS["none"]  # the whole image, never flipped
    kept = P.crop_flip_normalise(images, 8, whole, MEAN, STD, torch.Generator().manual_seed(0))
    flipped = P.crop_flip_normalise(images, 8, replace(whole, hflip=1.0), MEAN, STD, torch.Generator().manual_seed(0))
    torch.testing.assert_close(unnormalise(kept), images.float(), atol=1e-3, rtol=0)
    torch.testing.assert_close(unnormalise(flipped), images.float().flip(-1), atol=1e-3, rtol=0)


def test_crops_are_per_image_inside_the_image_and_seeded():
    gradient = torch.arange(32, dtype=torch.uint8).mul(8).expand(16, 3, 32, 32).contiguous()  # x-position coded
    small_crops = replace(AUGMENTATIONS["light"], scale=(0.2, 0.3))  # aspect ratio 3/4 to 4/3, flip one in two
    out = unnormalise(P.crop_flip_normalise(gradient, 16, small_crops, MEAN, STD, torch.Generator().manual_seed(1)))
    again = unnormalise(P.crop_flip_normalise(gradient, 16, small_crops, MEAN, STD, torch.Generator().manual_seed(1)))
    torch.testing.assert_close(out, again)
    assert out.shape == (16, 3, 16, 16)
    assert out.min() >= -1e-3 and out.max() <= 248 + 1e-3  # no padding sampled outside the image
    left_edges = out[:, 0, 0, 0]
    assert len(set(left_edges.round().tolist())) > 8  # each image its own crop
    rising = (out[:, 0, 0, -1] > out[:, 0, 0, 0]).sum().item()
    assert 2 <= rising <= 14  # some flipped, some not


@pytest.mark.parametrize("aug", ["randaug", "augmix"])
def test_policies_run_batched_and_seeded(aug):
    cfg = parse_config(["--aug", aug])
    store = P.preload(load_dataset("cifar10", str(SAMPLE)).train[:20], 32, "RGB", torch.device("cpu"), workers=0)
    augment = P.DeviceAugment(store, 32, replace(AUGMENTATIONS[cfg.aug], scale=(1, 1), ratio=(1, 1), hflip=0.0),
                              MEAN, STD)
    indices = torch.arange(20)
    images, labels = augment.batch(indices, torch.Generator().manual_seed(5))
    again, _ = augment.batch(indices, torch.Generator().manual_seed(5))
    other, _ = augment.batch(indices, torch.Generator().manual_seed(6))
    torch.testing.assert_close(images, again)
    assert images.shape == (20, 3, 32, 32) and labels.tolist() == [s.label for s in store.samples]
    plain = unnormalise(images).round().clamp(0, 255).to(torch.uint8)
    assert (plain != store.images).any(dim=(1, 2, 3)).float().mean() > 0.5  # most images changed by the policy
    assert not torch.equal(images, other)


def test_preload_keeps_small_images_at_native_size():
    samples = load_dataset("cifar10", str(SAMPLE)).train[:50]
    store = P.preload(samples, 96, "RGB", torch.device("cpu"), workers=0)
    assert store.images.shape == (50, 3, 32, 32) and store.images.dtype == torch.uint8
    assert store.labels.tolist() == [s.label for s in samples]
    assert P.store_side(samples, 16) == 21  # larger than needed: img_size x HEADROOM (1.3), rounded up


def test_preload_refuses_what_does_not_fit(monkeypatch):
    monkeypatch.setattr(P, "MEMORY_FRACTION", 1e-9)
    samples = load_dataset("cifar10", str(SAMPLE)).train[:10]
    with pytest.raises(DataError, match="need .* GiB.*--pipeline workers"):
        P.preload(samples, 64, "RGB", torch.device("cpu"), workers=0)


def test_resumed_epoch_sees_the_same_batches():
    cfg = parse_config(["--data-dir", str(SAMPLE), "--pipeline", "preload", "--img-size", "48", "--batch-size", "8",
                        "--max-train-samples", "40", "--workers", "0"])
    splits = prepare_data(cfg)
    data_config = {"input_size": (3, 48, 48), "mean": MEAN, "std": STD}
    augment = training_transform(cfg, splits, data_config, "RGB", torch.device("cpu"))
    whole = list(make_loader(cfg, splits.train, augment, "RGB", 3, Distributed()))
    resumed = list(make_loader(cfg, splits.train, augment, "RGB", 3, Distributed(), skip_batches=2))
    assert len(whole) == 5 and len(resumed) == 3
    for (a, la, ia), (b, lb, ib) in zip(whole[2:], resumed, strict=True):
        torch.testing.assert_close(a, b)
        assert la.tolist() == lb.tolist() and ia.tolist() == ib.tolist()
    next_epoch = next(iter(make_loader(cfg, splits.train, augment, "RGB", 4, Distributed())))
    assert next_epoch[2].tolist() != whole[0][2].tolist()


def test_training_with_preload_learns(tmp_path):
    run = train_tiny(tmp_path, "--pipeline", "preload", "--epochs", "2", "--max-train-samples", "200",
                     "--max-eval-samples", "100", "--batch-size", "32", "--lr", "3e-3", name="preload")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train_samples"] == 200
    assert metrics["top1"] >= 0.3  # 10 classes: chance is 0.1
