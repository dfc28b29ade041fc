"""The shared decode path's reduced-scale JPEG decoding: faster, and predictions as with a full decode."""

from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib.cbook
import numpy as np
import pytest
import timm
import torch
from PIL import Image

from trainers.inference import Predictor, load_image

REPO = Path(__file__).resolve().parents[1]
PHOTO = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)  # a real 512x600 JPEG photo


def big_photo(tmp_path):
    path = tmp_path / "big.jpg"
    Image.open(PHOTO).resize((2048, 2400), Image.Resampling.BICUBIC).save(path)
    return path


def test_large_jpeg_is_decoded_at_reduced_scale_keeping_twice_the_target(tmp_path):
    path = big_photo(tmp_path)
    assert load_image(path).size == (2048, 2400)
    reduced = load_image(path, "RGB", min_side=64)
    assert min(reduced.size) >= 128 and reduced.size == (256, 300)  # libjpeg's 1/8 scale
    assert load_image(path, "RGB", min_side=600).size == (2048, 2400)  # 1/2 would leave under 2 x 600
    png = tmp_path / "photo.png"
    Image.open(PHOTO).save(png)
    assert load_image(png, "RGB", min_side=64).size == (512, 600)  # only JPEG has reduced-scale decoding


def test_predictions_match_a_full_decode(tmp_path):
    path = big_photo(tmp_path)
    torch.manual_seed(0)
    predictor = Predictor(timm.create_model("et_net", num_classes=10))
    assert predictor.min_side == 64
    full = predictor.transform(load_image(path, predictor.mode))
    with torch.inference_mode():
        expected = predictor.model(full[None]).softmax(-1)[0]
    got = torch.from_numpy(predictor.predict([path]).probs[0])
    torch.testing.assert_close(got, expected, atol=2e-3, rtol=0)
    assert (predictor.preprocess(path) - full).abs().mean() < 0.02  # normalised units


def test_a_single_path_is_one_image(tmp_path):
    path = big_photo(tmp_path)
    predictor = Predictor(timm.create_model("et_net", num_classes=10))
    batch = predictor.predict([path]).probs
    for single in (path, str(path)):
        torch.testing.assert_close(predictor.predict(single).probs, batch)


def test_a_run_on_the_hub_predicts_as_its_folder_does(tmp_path, monkeypatch):
    """`hf-hub:` runs go through timm's Hub loader and the Hub cache (read offline here) for the weights, the labels
    and the fitted temperature, and predict exactly what the same run folder predicts."""
    from huggingface_hub import constants

    run = REPO / "reference" / "chest-xray-3-efficientnet_lite0"
    commit = "0" * 40
    cached_repo = tmp_path / "models--acme--chest3"
    (cached_repo / "refs").mkdir(parents=True)
    (cached_repo / "refs" / "main").write_text(commit)
    shutil.copytree(run, cached_repo / "snapshots" / commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    hub, local = Predictor.from_run("hf-hub:acme/chest3"), Predictor.from_run(run)
    assert hub.labels == local.labels == ["NORMAL", "BACTERIA", "VIRUS"]
    assert hub.temperature == local.temperature != 1.0
    images = sorted(str(p) for p in (REPO / "apps" / "examples" / "chest-xray").glob("*.jpeg"))
    assert images
    np.testing.assert_array_equal(hub.predict(images).probs, local.predict(images).probs)
    with pytest.raises(OSError, match="cannot find the requested files in the local cache"):
        Predictor.from_run("hf-hub:acme/elsewhere")  # not cached, and offline: trainers.predict names the id
