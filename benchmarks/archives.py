"""The real-image archives of ARENA_SHARED_DATA (default: shared/data beside the checkout): one table for the
benchmarks, the GPU run and the tests. Light to import (no torch), so that tests/conftest.py can read it first."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SHARED_DATA = Path(os.environ.get("ARENA_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@dataclass(frozen=True)
class Archive:
    """One real-image archive in ARENA_SHARED_DATA (README, "Tests on real images")."""

    holds: str  # what it unpacks to
    data_dir: str  # the folder inside the unpacked tree to pass as --data-dir
    trains: tuple[str, ...] = ()  # the --dataset values it holds the training images of
    evaluates: tuple[str, ...] = ()  # the --dataset values whose validation images it holds


# The one table of the real-data archives: file name -> what it holds and which datasets train and evaluate on it,
# in the order benchmarks/gpu_run.py sends them (CIFAR-10, its headline, first; Tiny ImageNet, the largest, last).
SHARED_ARCHIVES = {
    "cifar10-train.tar.gz": Archive("cifar10/train/<class>/*.jpg, the CIFAR-10 training split as JPEG", "cifar10",
                                    ("cifar10",), ("cifar10",)),
    "chest_xray-train.tar.gz": Archive("chest_xray/train/{NORMAL,PNEUMONIA}/*.jpeg, the Kermany chest X-ray training "
                                       "split", "chest_xray", ("chest-xray", "chest-xray-3"),
                                       ("chest-xray", "chest-xray-3")),
    "fer2013-train.tar.gz": Archive("fer2013/train/<emotion>/*.jpg, the FER2013 training split", "fer2013",
                                    ("fer2013",)),
    "fer2013-publictest.tar.gz": Archive("fer2013/publictest/<emotion>/*.jpg, the FER2013 PublicTest split",
                                         "fer2013", evaluates=("fer2013",)),  # its validation split
    "tiny-imagenet-200-train100.tar.gz": Archive(
        "tiny-imagenet-200/{wnids.txt,words.txt,train/<wnid>/images/*.JPEG}", "tiny-imagenet-200",
        ("tiny-imagenet",), ("tiny-imagenet",)),
}
# --dataset value -> (the archive of its training images, the folder to pass as --data-dir inside it)
ARCHIVES = {dataset: (name, archive.data_dir)
            for name, archive in SHARED_ARCHIVES.items() for dataset in archive.trains}
# --dataset value -> (the archive of its validation images, the data directory their sample ids are relative to)
EVAL_ARCHIVES = {dataset: (name, archive.data_dir)
                 for name, archive in SHARED_ARCHIVES.items() for dataset in archive.evaluates}
