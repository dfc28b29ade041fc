"""Grad-CAM (pytorch-grad-cam) for any timm classifier, with the target layer found from the model itself.

timm describes every backbone's feature maps in `model.feature_info`; its last entry is the deepest spatial map
(VGG `features.30`, ResNet `layer4`, Inception-v3 `Mixed_7c`, EfficientNet `blocks.6`, ConvNeXt `stages.3`), which
is the layer Grad-CAM wants. ViT-style models yield tokens there, which are reshaped to their patch grid.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from timm.data import resolve_data_config
from torch import nn

from trainers.inference import ImageSource, Predictor

Reshape = Callable[[torch.Tensor], torch.Tensor]


class GradCamError(ValueError):
    """The model has no layer Grad-CAM can use."""


def target_layer(model: nn.Module) -> tuple[nn.Module, Reshape | None]:
    """The module whose activations Grad-CAM weighs, and the reshape its output needs (None for CNN maps)."""
    info = getattr(model, "feature_info", None)
    if info:
        layer = model.get_submodule(info[-1]["module"])
    else:  # not a timm model: the last convolution is the deepest spatial map
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise GradCamError(f"{type(model).__name__} has no convolutional feature map for Grad-CAM")
        layer = convs[-1]
    return layer, _token_grid(model)


def _token_grid(model: nn.Module) -> Reshape | None:
    """ViT-style models (timm's `num_prefix_tokens` + `patch_embed`): tokens (B, N, C) -> map (B, C, H, W)."""
    grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
    prefix = getattr(model, "num_prefix_tokens", None)
    if grid is None or prefix is None:
        return None

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, prefix:, :]
        return patches.reshape(patches.size(0), grid[0], grid[1], patches.size(2)).permute(0, 3, 1, 2)

    return reshape


def model_view(model: nn.Module, tensor: torch.Tensor) -> np.ndarray:
    """Undo the normalisation of a preprocessed (C, H, W) tensor: the image exactly as the model saw it, HWC 0-1."""
    config = resolve_data_config({}, model=model)
    mean = torch.tensor(config["mean"]).view(-1, 1, 1)
    std = torch.tensor(config["std"]).view(-1, 1, 1)
    image = (tensor.cpu() * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image


def gradcam(predictor: Predictor, image: ImageSource, class_index: int) -> np.ndarray:
    """Heatmap of `class_index` over `image` (any `load_image` source), as an RGB uint8 overlay at input size.

    The caller serialises use of `predictor.model`: Grad-CAM hooks must not see another request's forward pass.
    """
    tensor = predictor.preprocess(image)
    layer, reshape = target_layer(predictor.model)
    # Gradients are the point here, so leave inference mode; GradCAM removes its hooks on exit.
    with torch.inference_mode(False), torch.enable_grad(), \
            GradCAM(predictor.model, [layer], reshape_transform=reshape) as cam:
        mask = cam(tensor.unsqueeze(0).to(predictor.device), [ClassifierOutputTarget(class_index)])[0]
    return show_cam_on_image(model_view(predictor.model, tensor), mask, use_rgb=True)
