"""The source studies' networks (trainers/custom_models.py) behave like any timm model, in and out of the trainer."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from conftest import train_tiny
from safetensors.torch import load_file, save_file
from torch import nn

import runfolder as R
from trainers.custom_models import BackboneWithHead, ResidualBlock, SeparableConv
from trainers.finetune import main
from trainers.inference import Predictor
from trainers.models import create_backbone, set_trainable

SCRATCH = ["et_net", "xray_cnn1", "xray_cnn2", "xray_cnn3", "mini_xception"]
WRAPPED = ["resnet50_gmp_bn_head", "resnet152_dense128_head"]


def small_input(model: nn.Module, size: int = 64) -> torch.Tensor:
    return torch.randn(2, model.pretrained_cfg["input_size"][0], size, size)


@pytest.mark.parametrize("name", SCRATCH + WRAPPED)
def test_timm_interface(name):
    assert timm.is_model(name)
    model = timm.create_model(name, num_classes=5).eval()
    cfg = model.pretrained_cfg
    assert cfg["architecture"] == name and {"input_size", "mean", "std", "interpolation", "crop_pct"} <= set(cfg)
    assert model.default_cfg is cfg and cfg["classifier"] == "head.fc" and model.num_classes == 5
    assert isinstance(model.get_submodule(cfg["first_conv"]), nn.Conv2d)
    assert len(cfg["mean"]) == len(cfg["std"]) == cfg["input_size"][0] == model.in_chans
    x = small_input(model)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape[1] == model.num_features
        assert torch.allclose(model(x), model.forward_head(features), atol=1e-5)
        assert model.forward_head(features, pre_logits=True).shape == (2, model.head_hidden_size)
        assert model.get_classifier() is model.head
        model.reset_classifier(3)
        assert model(x).shape == (2, 3) and model.num_classes == 3
        model.reset_classifier(0)
        assert model(x).shape == (2, model.head_hidden_size)


def test_architectures_match_the_reports():
    et = timm.create_model("et_net")
    blocks = [m for m in et.modules() if isinstance(m, ResidualBlock)]
    assert [b.conv2.kernel_size[0] for b in blocks] == [1, 3] * 4
    assert {b.conv2.out_channels for b in blocks} == {16} and et.num_classes == 200 and et.head.drop.p == 0.5

    for depth in (1, 2, 3):
        cnn = timm.create_model(f"xray_cnn{depth}")
        assert sum(isinstance(m, nn.Conv2d) for m in cnn.features.modules()) == depth

    xception = timm.create_model("mini_xception")
    assert xception.in_chans == 1 and xception.pretrained_cfg["input_size"] == (1, 48, 48)
    assert sum(p.numel() for p in xception.parameters()) == 56_951  # Keras' trainable count for 7 classes
    assert sum(isinstance(m, SeparableConv) for m in xception.modules()) == 8
    assert isinstance(xception.head.fc, nn.Conv2d)  # conv per class, then global average pooling

    r50 = timm.create_model("resnet50_gmp_bn_head")
    assert r50.head.global_pool.pool_type == "max" and isinstance(r50.head.norm, nn.BatchNorm1d)
    assert r50.head.drop.p == 0.3
    r152 = timm.create_model("resnet152_dense128_head")
    assert r152.head.pre_logits[0].out_features == 128 and r152.head_hidden_size == 128


def test_xray_cnn_run_folder_round_trip(tmp_path):
    run = train_tiny(tmp_path, "--model", "xray_cnn2", "--no-pretrained")
    model = timm.create_model(f"local-dir:{run}", pretrained=True).eval()
    assert type(model).__name__ == "SmallCNN" and model.num_classes == 10
    saved = load_file(str(run / R.WEIGHTS))
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    assert model.pretrained_cfg["label_names"][0] == "airplane"
    metrics = R.read_metrics(run)
    assert metrics["model"] == "xray_cnn2" and metrics["pretrained_tag"] == "none"


def test_grayscale_mini_xception_through_the_trainer(tmp_path, shared_data):
    """FER2013 images stay single-channel end to end: trainer, run folder, predictor."""
    fer = shared_data("fer2013-train.tar.gz")
    run = main(["--dataset", "fer2013", "--data-dir", str(fer), "--model", "mini_xception", "--no-pretrained",
                "--output", str(tmp_path), "--name", "fer", "--epochs", "1", "--batch-size", "16", "--workers", "0",
                "--no-record", "--max-train-samples", "56", "--max-eval-samples", "28", "--img-size", "40"])
    config = R.read_config(run)
    assert config["model_args"]["in_chans"] == 1 and config["pretrained_cfg"]["input_size"] == [1, 40, 40]
    predictor = Predictor.from_run(run)
    assert predictor.mode == "L" and predictor.model.in_chans == 1
    image = next((fer / "fer2013" / "train" / "happy").iterdir())
    prediction = predictor.predict([image])
    assert prediction.probs.shape == (1, 7) and abs(prediction.probs.sum() - 1) < 1e-4


@pytest.fixture(scope="module")
def plain_resnet50(tmp_path_factory) -> tuple[nn.Module, str]:
    """A torchvision ResNet50 (1000-class head) saved as a torch file: what an offline user passes to --weights."""
    model = torchvision.models.resnet50()
    path = tmp_path_factory.mktemp("weights") / "resnet50.pth"
    torch.save(model.state_dict(), path)
    return model, str(path)


def test_plain_backbone_weights_load_into_the_report_head(plain_resnet50):
    """`--weights resnet50.pth` for the wrapper: body loaded exactly, 1000-class fc dropped, head kept."""
    plain, path = plain_resnet50
    model, notes = create_backbone("resnet50_gmp_bn_head", 10, weights=path)
    assert isinstance(model, BackboneWithHead) and model.num_classes == 10 and not notes
    body = model.backbone.state_dict()
    assert all(torch.equal(body[k], v) for k, v in plain.state_dict().items() if not k.startswith("fc."))
    assert model.head.fc.weight.abs().sum() > 0  # initialised, not zeroed: nothing was mismatched


def test_timm_pretrained_path_uses_the_backbone_checkpoint(plain_resnet50):
    """timm's own `pretrained=True` (the Hub path online) goes through the same filter."""
    plain, path = plain_resnet50
    model = timm.create_model("resnet50_gmp_bn_head", pretrained=True, num_classes=4,
                              pretrained_cfg_overlay={"file": path, "hf_hub_id": None})
    assert torch.equal(model.backbone.conv1.weight, plain.conv1.weight)


def test_linear_probe_trains_the_whole_report_head():
    model = timm.create_model("resnet152_dense128_head", num_classes=2)
    set_trainable(model, "linear-probe")
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    assert trainable == {k for k, _ in model.named_parameters() if k.startswith("head.")}
    assert {"head.pre_logits.0.weight", "head.fc.weight"} <= trainable


def test_new_multi_layer_head_is_zeroed_only_at_its_output(tmp_path):
    """Weights of the same network with another class count: the dense 128 layer keeps learnable weights."""
    source = timm.create_model("xray_cnn2", num_classes=3)
    path = tmp_path / "xray.safetensors"
    save_file(source.state_dict(), str(path))
    model, notes = create_backbone("xray_cnn2", 2, weights=path)
    assert "re-initialised" in notes[0]
    assert torch.equal(model.head.pre_logits[0].weight, source.head.pre_logits[0].weight)
    assert model.head.fc.weight.abs().sum() == 0
