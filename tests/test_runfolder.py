"""The run-folder writers: files keep the user's umask, and timm reads back what write_model wrote."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import timm
from fixtures_runs import make_run

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
    R.write_predictions(tmp_path, pd.DataFrame([["train/cat/1.jpg", "cat", "cat", True, 0.9, ["cat"], [0.9], 0.8]],
                                               columns=R.PREDICTION_COLUMNS))
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


def test_config_is_the_same_on_a_timm_without_data_config(tmp_path):
    """timm 1.0.29's save_for_hf has no `data_config`: the run's preprocessing then goes through the model's
    pretrained_cfg. Both routes, through the real exporter, must write the same config.json, the source checkpoint's
    test-time size (resnet18.a1_in1k: 288 px) dropped for the run's own 64 px."""
    from timm.models import save_for_hf

    data_config = {"input_size": (3, 64, 64), "interpolation": "bilinear", "mean": (0.5, 0.5, 0.5),
                   "std": (0.25, 0.25, 0.25), "crop_pct": 1.0, "crop_mode": "center"}
    configs = []
    for takes_data_config in (True, False):
        model = timm.create_model("resnet18.a1_in1k", num_classes=3, pretrained=False)
        assert model.pretrained_cfg["test_input_size"] == (3, 288, 288)
        folder = tmp_path / str(takes_data_config)
        save_for_hf(model, folder, model_config={"label_names": ["a", "b", "c"]},
                    **R._export_kwargs(model, data_config, takes_data_config))
        configs.append(R.read_config(folder))
    assert configs[0] == configs[1]
    assert configs[1]["pretrained_cfg"]["input_size"] == [3, 64, 64]
    assert "test_input_size" not in configs[1]["pretrained_cfg"]


def test_a_lineage_counts_every_run_built_on_once(tmp_path):
    """Two second stages of one first stage, souped: the first stage counts once, however deep; a run recorded
    before lineages stands for its earlier runs by the seconds it recorded of them."""
    first = make_run(tmp_path, "first", wall_s=100.0)
    a = make_run(tmp_path, "a", wall_s=10.0, lineage=R.lineage([first]))
    b = make_run(tmp_path, "b", wall_s=20.0, lineage=R.lineage([first]))
    assert R.lineage([a, b]) == {"first": 100.0, "a": 10.0, "b": 20.0}
    soup = R.read_metrics(make_run(tmp_path, "soup", wall_s=1.0, lineage=R.lineage([a, b])))
    assert R.whole_wall_s(soup) == 131.0
    old = make_run(tmp_path, "old", wall_s=30.0, first_stage_wall_s=50.0, teachers_wall_s=5.0)
    assert R.lineage([old]) == {"old (earlier runs)": 55.0, "old": 30.0}
    assert R.whole_wall_s(R.read_metrics(old)) == 85.0


def test_whole_wall_time_counts_features_read_from_a_cache():
    """A linear probe that read an earlier run's cached features cost that caching too; one that computed them has
    them in its own wall time already."""
    probe = {"wall_s": 28.0, R.FEATURE_CACHE_S: 574.0}
    assert R.whole_wall_s(probe | {R.FEATURE_CACHE_READ: True}) == 602.0
    assert R.whole_wall_s(probe | {R.FEATURE_CACHE_READ: False}) == 28.0


def test_predictions_keep_their_schema(tmp_path):
    """predictions.parquet is read by the leaderboard, the verdict and the soup: a frame of other columns is refused
    before anything is written."""
    with pytest.raises(ValueError, match=r"takes the columns \['sample_id'"):
        R.write_predictions(tmp_path, pd.DataFrame({"sample_id": ["train/cat/1.jpg"], "label": ["cat"]}))
    assert not (tmp_path / R.PREDICTIONS).exists()
