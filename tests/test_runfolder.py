"""The run-folder writers: files keep the user's umask, and timm reads back what write_model wrote."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import timm

import runfolder as R


@pytest.fixture(params=[0o022, 0o027], ids=["umask-022", "umask-027"])
def umask(request) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_written_file_keeps_the_umask(umask, tmp_path):
    """model.safetensors comes from timm's save_for_hf (safetensors writes it 0600); it must be as readable as the
    rest, e.g. 0644 under umask 022, so a web server or a teammate can load the weights."""
    model = timm.create_model("test_efficientnet", num_classes=3, pretrained=False)
    R.write_model(tmp_path, model, ["cat", "dog", "fox"], None, {"input_size": (3, 32, 32)})
    R.write_json(tmp_path / R.METRICS, {"top1": 0.5})
    R.write_history(tmp_path, [{"epoch": 1, "train_loss": 1.0}])
    R.write_predictions(tmp_path, pd.DataFrame({"sample_id": ["train/cat/1.jpg"]}))
    R.write_train_config(tmp_path, {"epochs": 1})
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted([R.CONFIG, R.WEIGHTS, R.METRICS, R.HISTORY, R.PREDICTIONS, R.TRAIN_CONFIG])
    assert {name: mode(tmp_path / name) for name in written} == dict.fromkeys(written, 0o666 & ~umask)


def test_label_ids_travel_beside_timms_label_names(tmp_path):
    """Human names in timm's label_names (what timm and the apps show), the dataset's ids in label_ids."""
    model = timm.create_model("test_efficientnet", num_classes=2, pretrained=False)
    R.write_model(tmp_path, model, ["goldfish", "tabby"], {"goldfish": "goldfish, Carassius auratus"},
                  {"input_size": (3, 32, 32)}, label_ids=["n01443537", "n02123045"])
    assert R.read_config(tmp_path)[R.LABEL_IDS] == ["n01443537", "n02123045"]
    loaded = timm.create_model(f"local-dir:{tmp_path}", pretrained=True)
    assert loaded.pretrained_cfg["label_names"] == ["goldfish", "tabby"]
    assert loaded.pretrained_cfg["label_descriptions"] == {"goldfish": "goldfish, Carassius auratus"}
