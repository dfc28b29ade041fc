"""Shared fixtures: the real image archives of ../shared/data, and tiny real trainings.

Tiny trainings use the repository's own CIFAR-10 sample (data/sample) so the core suite is meaningful on a
fresh clone; tests that need the other datasets look for their archives in ../shared/data beside the checkout (or
$ARENA_SHARED_DATA) and skip, naming the archive, when it is absent.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from benchmarks.archives import SHARED_ARCHIVES, SHARED_DATA

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "cifar10"

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the suite never reaches the Hub
os.environ.setdefault("TQDM_DISABLE", "1")

# Flags that make a training run take seconds on a 2-core CPU.
TINY = ["--img-size", "64", "--epochs", "1", "--batch-size", "16", "--workers", "0", "--no-record",
        "--max-train-samples", "40", "--max-eval-samples", "20"]




def shared_archive(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"needs the real-image archive {name} ({SHARED_ARCHIVES[name].holds}): not found in {SHARED_DATA}; "
                    "put it there, or set ARENA_SHARED_DATA to the folder holding it (README, 'Tests on real images')")
    return path


@pytest.fixture(scope="session")
def shared_data(tmp_path_factory) -> callable:
    """`shared_data("chest_xray-train.tar.gz")` -> the unpacked folder (once per session, in a temp dir)."""
    cache: dict[str, Path] = {}

    def unpack(name: str) -> Path:
        if name not in cache:
            archive = shared_archive(name)
            out = tmp_path_factory.mktemp(name.split(".")[0])
            with tarfile.open(archive) as tar:
                tar.extractall(out, filter="data")
            cache[name] = out
        return cache[name]

    return unpack


def evaluated_images(run: Path) -> list[str]:
    """The image files behind predictions.parquet, in its order: sample ids are relative to the run's data dir."""
    import pandas as pd

    import runfolder as R

    return [str(R.data_dir(run) / s) for s in pd.read_parquet(run / R.PREDICTIONS).sample_id]


def train_tiny(output: Path, *extra: str, name: str = "tiny") -> Path:
    """A real fine-tuning run (Lite0, offline weights) on the in-repo sample, in a few seconds."""
    from trainers.finetune import main

    return main(["--dataset", "cifar10", "--data-dir", str(SAMPLE), "--output", str(output), "--name", name,
                 *TINY, *extra])


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """One finished run folder shared by read-only tests (apps, cards, leaderboard, predict, export)."""
    return train_tiny(tmp_path_factory.mktemp("runs"), name="cifar10-tiny")
