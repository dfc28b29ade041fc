"""Linear probes on cached features (trainers/feature_cache.py) and heads that start from ImageNet's own rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from conftest import evaluated_images, train_tiny
from timm.data import ImageNetInfo

import runfolder as R
from trainers.custom_models import BackboneWithHead
from trainers.feature_cache import FeatureHead, cacheable, extract
from trainers.inference import Predictor
from trainers.models import create_backbone, package_state_dict


def test_cached_probe_predictions_are_the_full_models(tmp_path):
    """The run's predictions, made by the head on cached features, are what the saved model gives the images."""
    run = train_tiny(tmp_path, "--strategy", "linear-probe", "--epochs", "3", name="probe")
    recorded = pd.read_parquet(run / R.PREDICTIONS)
    probs = Predictor.from_run(run, calibrated=False).predict(evaluated_images(run)).probs
    labels = R.read_config(run)["label_names"]
    assert [labels[i] for i in probs.argmax(1)] == recorded.pred_label.tolist()
    assert R.read_train_config(run)["feature_cache"] is True


def test_feature_cache_dir_is_reused_and_keyed(tmp_path, capsys):
    cache = tmp_path / "features"
    first = train_tiny(tmp_path, "--strategy", "linear-probe", "--feature-cache-dir", str(cache), name="a")
    assert len(list(cache.glob("*.safetensors"))) == 1
    capsys.readouterr()
    second = train_tiny(tmp_path, "--strategy", "linear-probe", "--feature-cache-dir", str(cache), name="b")
    assert "feature cache: read" in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_parquet(first / R.PREDICTIONS), pd.read_parquet(second / R.PREDICTIONS))
    computed, read = R.read_metrics(first), R.read_metrics(second)
    assert (computed["feature_cache_read"], read["feature_cache_read"]) == (False, True)
    assert read["feature_cache_s"] == pytest.approx(computed["feature_cache_s"], abs=0.1)  # the first run's cost
    train_tiny(tmp_path, "--strategy", "linear-probe", "--feature-cache-dir", str(cache), "--img-size", "72",
               name="c")
    assert len(list(cache.glob("*.safetensors"))) == 2  # other preprocessing, other features


def test_uncached_probe_says_why(tmp_path, capsys):
    train_tiny(tmp_path, "--strategy", "linear-probe", "--cutmix", "1.0", name="cutmix")
    assert "features not cached (--cutmix cuts images, not features)" in capsys.readouterr().out


@pytest.mark.parametrize("make", [
    lambda: timm.create_model("resnet18", num_classes=5, drop_rate=0.3),
    lambda: BackboneWithHead("resnet18", num_classes=5, global_pool="max", drop_rate=0.3, norm=True),
], ids=["timm-linear", "pooled-report-head"])
def test_head_on_cached_features_equals_the_model(make):
    torch.manual_seed(0)
    model = make().eval()
    images = torch.randn(6, 3, 64, 64)
    batches = [(images[:4], torch.zeros(4, dtype=torch.long), torch.arange(4)),
               (images[4:], torch.zeros(2, dtype=torch.long), torch.arange(4, 6))]
    cached = extract(model, batches, torch.device("cpu"), "val")
    with torch.no_grad():
        torch.testing.assert_close(FeatureHead(model).eval()(cached["features"]), model(images))
    assert cached["indices"].tolist() == list(range(6))


def test_conv_heads_are_not_cacheable():
    model = timm.create_model("mini_xception", num_classes=7)
    assert "ConvPoolHead" in cacheable(model)
    assert cacheable(timm.create_model("resnet18", num_classes=3)) is None


def test_head_starts_from_the_imagenet_rows_of_known_classes():
    wnids = ImageNetInfo().label_names()
    picked = [wnids[1], wnids[500], wnids[999]]
    model, notes = create_backbone("efficientnet_lite0", 3, class_ids=picked)
    source = package_state_dict()
    torch.testing.assert_close(model.classifier.weight, source["classifier.weight"][[1, 500, 999]])
    torch.testing.assert_close(model.classifier.bias, source["classifier.bias"][[1, 500, 999]])
    assert any("ImageNet classifier's rows" in n for n in notes)

    other, _ = create_backbone("efficientnet_lite0", 3, class_ids=[*picked[:2], "not-a-wnid"])
    assert not other.classifier.weight.any()  # a class ImageNet lacks: the head starts at zero


def test_imagenet_head_gives_the_imagenet_models_logits_for_its_classes():
    wnids = ImageNetInfo().label_names()
    subset = wnids[::5]  # 200 classes, as Tiny ImageNet has
    model, _ = create_backbone("efficientnet_lite0", len(subset), class_ids=subset)
    full = timm.create_model("tf_efficientnet_lite0", num_classes=1000)
    full.load_state_dict(package_state_dict())
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        np.testing.assert_allclose(model.eval()(x).numpy(), full.eval()(x)[:, ::5].numpy(), atol=1e-4)


HUB_MODEL = "mobilenetv3_small_050"  # small, and timm's default weights for it live on the Hub
HUB_CHILD = """
import sys, torch
from timm.data import ImageNetInfo
from trainers.models import create_backbone
from safetensors.torch import load_file
wnids = ImageNetInfo().label_names()
model, notes = create_backbone(sys.argv[1], 3, class_ids=[wnids[1], wnids[500], wnids[999]])
source = load_file(sys.argv[2])
torch.testing.assert_close(model.classifier.weight, source["classifier.weight"][[1, 500, 999]])
plain, plain_notes = create_backbone(sys.argv[1], 3)
assert not plain.classifier.weight.any() and not plain.classifier.bias.any(), "the new head starts at zero"
print(notes, plain_notes, sep="\\n")
"""


def test_hub_weights_get_the_same_new_head_as_local_ones(tmp_path):
    """Weights from the Hub (here a Hub cache of one repo's `main`, read offline) start the new head as file and
    packaged weights do: from the ImageNet rows of known classes (--head-init auto), else at zero."""
    import os
    import subprocess
    import sys

    from safetensors.torch import save_file

    repo = timm.models.get_pretrained_cfg(HUB_MODEL).hf_hub_id  # e.g. timm/mobilenetv3_small_050.lamb_in1k
    commit = "0" * 40
    cached_repo = tmp_path / "hub" / f"models--{repo.replace('/', '--')}"
    snapshot = cached_repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (cached_repo / "refs").mkdir()
    (cached_repo / "refs" / "main").write_text(commit)
    weights = snapshot / "model.safetensors"
    save_file(timm.create_model(HUB_MODEL, num_classes=1000).state_dict(), weights)
    env = os.environ | {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    child = subprocess.run([sys.executable, "-c", HUB_CHILD, HUB_MODEL, str(weights)], env=env, capture_output=True,
                           text=True, timeout=120, check=False)
    assert child.returncode == 0, child.stderr[-2000:]
    assert "ImageNet classifier's rows" in child.stdout and "re-initialised at zero" in child.stdout
