"""Training configuration: one dataclass; CLI flags and YAML recipes are generated from its fields.

Precedence: dataclass defaults < `--config FILE.yaml` < flags given on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runfolder import RUNS_DIR, TRAIN_CONFIG
from trainers.augment import AUGMENTATIONS
from trainers.data import BY_SUBJECT, DATASETS, SUBJECT_PATTERNS
from trainers.models import HEAD_INITS, SHORT_NAMES, STRATEGIES
from trainers.preload import PIPELINES

REPO_ROOT = Path(__file__).resolve().parents[1]
# Run with no arguments = this recipe: Lite0 on the CIFAR-10 sample shipped in data/sample, CPU-sized.
DEFAULT_RECIPE = REPO_ROOT / "trainers" / "recipes" / "default.yaml"


# --keep: the weights a finished run keeps. "last" is the default: on a validation split carved from train,
# the epoch with the best top-1 was often the first, before the learning rate annealed, and did worse on the
# held-out test split (benchmarks/RESULTS.md, "Which weights to keep").
KEEP_POLICIES = {
    "last": "the last epoch's weights (the EMA's with --ema, the average with --swa), as the Hugging Face Trainer "
            "keeps by default",
    "best": "the weights of the epoch with the lowest validation loss",
}


class ConfigError(ValueError):
    """An option value that no run can use, named with the flag."""


def _opt(default: Any, help: str, minimum: float | None = None, maximum: float | None = None,
         **argparse_kwargs: Any) -> Any:
    """A TrainConfig field: its default, help, and for numbers the least and most a run can use (`check_values`)."""
    return field(default=default, metadata={"help": help, "minimum": minimum, "maximum": maximum, **argparse_kwargs})


def _choice(default: str, help: str, described: dict[str, str]) -> Any:
    """An option whose choices come from a registry ({name: what it does})."""
    return _opt(default, f"{help}: " + "; ".join(f"{name}: {what}" for name, what in described.items()),
                choices=list(described))


@dataclass
class TrainConfig:
    # data
    dataset: str = _opt("cifar10", f"{', '.join(DATASETS)}, or hf:<hub-id>")
    data_dir: str | None = _opt(None, "dataset root in its usual on-disk layout")
    val_split: float = _opt(0.1, "fraction of train carved out (stratified) when the dataset has no validation split")
    balanced_val: bool = _opt(False, "carve the same number of validation images from every class")
    val_groups: str | None = _opt(None, "regex on image file names whose first group names the subject (a patient, a "
                                        "person): each subject's images stay on one side of the carved validation "
                                        f"split; '{BY_SUBJECT}': the dataset's own ({', '.join(SUBJECT_PATTERNS)})")
    max_train_samples: int | None = _opt(None, "use at most N training images (class-stratified)", minimum=1)
    max_eval_samples: int | None = _opt(None, "use at most N validation/test images (class-stratified)", minimum=1)
    skip_corrupt: bool = _opt(False, "skip unreadable images (each is reported) instead of stopping")
    workers: int = _opt(2, "data-loading worker processes (0: load in the training process)", minimum=0)
    pipeline: str = _choice("workers", "training input pipeline", PIPELINES)
    # model
    model: str = _opt("efficientnet_lite0", f"timm model name, short name ({', '.join(SHORT_NAMES)}), or "
                                            "hf-hub:ORG/NAME: a timm repo on the Hub, such as a published run")
    pretrained: bool = _opt(True, "start from pretrained weights (--no-pretrained: random init)")
    weights: str | None = _opt(None, "local weights file (.safetensors or .pth; timm or torchvision state dict) or "
                                     "run folder; several joined by commas start from their average, a model soup")
    img_size: int | None = _opt(None, "training resolution (default: the backbone's pretrained input size)")
    test_img_size: int | None = _opt(None, "evaluation and deployment resolution, recorded in config.json (default: "
                                           "--img-size). Random-resized crops show objects larger than a centre crop "
                                           "does, so a test size ~15%% larger often scores better (FixRes, Touvron "
                                           "et al. 2019); a finished run is re-evaluated with --resume RUN "
                                           "--test-img-size N")
    crop_pct: float | None = _opt(None, "evaluation centre crop, as a share of the resized image (default: the "
                                        "backbone's, 0.875 for ImageNet models); 1.0 keeps the whole image, which "
                                        "small images such as CIFAR-10's 32 px want")
    drop_rate: float = _opt(0.2, "dropout before the classifier", minimum=0, maximum=1)
    head_init: str = _choice("auto", "the new classifier's starting weights", HEAD_INITS)
    # strategy and optimisation
    strategy: str = _choice("full", "what learns", STRATEGIES)
    feature_cache: bool = _opt(True, "linear-probe: run the frozen backbone once over every image and train the head "
                                     "on the cached features, each epoch a fraction of a second (no per-epoch "
                                     "augmentation; --no-feature-cache augments every epoch and runs the backbone "
                                     "every step)")
    feature_cache_dir: str | None = _opt(None, "also save the cached features here, keyed by the frozen weights, "
                                               "preprocessing and images: the next linear probe of the same backbone "
                                               "on the same images skips the backbone")
    epochs: int = _opt(10, "training epochs (0: evaluate the starting weights, e.g. a soup of --weights, and "
                                "write their run folder)", minimum=0)
    batch_size: int = _opt(32, "images per step (per process under torchrun)", minimum=1)
    lr: float = _opt(1e-3, "learning rate of the new head", minimum=0)
    backbone_lr_scale: float = _opt(1.0, "backbone learning rate = lr x this (full/gradual); benchmarks/RESULTS.md "
                                         "section 6 compares 0.1 and 1 on held-out data")
    opt: str = _opt("adamw", "optimizer, any timm.optim name (adamw, sgd, lamb, ...)")
    momentum: float = _opt(0.9, "momentum for SGD-style optimizers", minimum=0, maximum=1)
    weight_decay: float = _opt(0.05, "weight decay (not applied to norms and biases)", minimum=0)
    sched: str = _opt("cosine", "LR schedule, any timm.scheduler name (cosine, step, plateau, none)")
    warmup_epochs: int = _opt(0, "linear warm-up epochs", minimum=0)
    cycles: int = _opt(1, "split the schedule (cosine, tanh or poly) into N equal cycles, each restarting at --lr "
                          "(SGDR warm restarts, timm's cycle_limit); --epochs must be a multiple of N", minimum=1)
    decay_epochs: float = _opt(30, "epochs between decays for --sched step", minimum=0.01)
    decay_rate: float = _opt(0.1, "decay factor for --sched step/plateau", minimum=0, maximum=1)
    label_smoothing: float = _opt(0.1, "label smoothing of the cross-entropy", minimum=0, maximum=1)
    mixup: float = _opt(0.0, "mixup alpha (0 = off)", minimum=0)
    cutmix: float = _opt(0.0, "cutmix alpha (0 = off)", minimum=0)
    aug: str = _choice("light", "training augmentation", {a.name: a.help for a in AUGMENTATIONS.values()})
    teachers: str | None = _opt(None, "finished run folders (or hf-hub: ids), joined by commas: their averaged "
                                      "probabilities on each training image become part of its target, knowledge "
                                      "distillation of an ensemble into this one network (not with --mixup/--cutmix)")
    distill_weight: float = _opt(0.5, "--teachers: the teachers' share of each target; the rest is the label, "
                                      "smoothed by --label-smoothing")
    class_weights: bool = _opt(False, "weight the loss by inverse class frequency (imbalanced data)")
    balanced_sampler: bool = _opt(False, "sample training images so classes are seen equally often")
    clip_grad: float | None = _opt(None, "clip gradient norm to this value", minimum=0)
    ema: bool = _opt(False, "keep an exponential moving average of the weights (timm ModelEmaV3) and evaluate it")
    ema_decay: float = _opt(0.998, "EMA decay", minimum=0, maximum=1)
    ema_warmup: bool = _opt(True, "timm's EMA warm-up, decay min(ema_decay, 1 - (1 + step)^-2/3): the average "
                                  "forgets the starting weights (without it, 0.998^1340 = 7%% of a 1,340-step run's "
                                  "average is its start)")
    swa: bool = _opt(False, "stochastic weight averaging: keep the equal average of the weights at the end of each "
                            "--cycles cycle (torch's AveragedModel, batch-norm statistics included) and evaluate it")
    keep: str = _choice("last", "the weights the run keeps", KEEP_POLICIES)
    early_stop: int | None = _opt(None, "stop after N epochs without a lower validation loss", minimum=1)
    time_limit: float | None = _opt(None, "stop after the epoch that ends past N seconds since the start "
                                          "(data loading included)")
    # runtime
    seed: int = _opt(42, "random seed")
    split_seed: int | None = _opt(None, "seed of the validation carve and of --max-*-samples (default: --seed); fix it "
                                        "to train other seeds on the same images, e.g. the runs of a model soup")
    seeds: int = _opt(1, "train N runs, with seeds seed, seed+1, ...: one seed group on the leaderboard (mean ± std); "
                         "the run folders are named <name>-seed<S>", minimum=1)
    deterministic: bool = _opt(False, "deterministic algorithms (exactly reproducible resume on CPU)")
    amp: bool = _opt(True, "mixed precision on GPU (bf16)")
    channels_last: bool = _opt(True, "channels-last memory format: 1.7x faster Lite0 training on CPU "
                                     "(benchmarks/RESULTS.md); left off where a layer breaks in it on the device")
    compile: bool = _opt(False, "torch.compile the model")
    fused_optimizer: bool = _opt(True, "torch's fused optimizer kernels for adam, adamw and sgd")
    device: str | None = _opt(None, "cuda, cpu (default: cuda when available)")
    checkpoint_every: int | None = _opt(None, "also checkpoint every N optimizer steps (always every epoch)",
                                        minimum=1)
    lr_find: bool = _opt(False, "learning-rate range test first: lr_find.png in the run folder, a suggested --lr")
    # output
    output: str = _opt(RUNS_DIR, "directory that receives the run folder")
    name: str | None = _opt(None, "run folder name (default: <dataset>-<model>-<timestamp>)")
    resume: str | None = _opt(None, "continue the killed or finished run in this run folder")
    record: bool = _opt(True, "record the finished run in the leaderboard store")
    db: str | None = _opt(None, "leaderboard store path (default: $ARENA_DB or the user cache)")
    push_to_hub: str | None = _opt(None, "publish the finished run to this Hub repo (ORG/NAME)")
    private: bool = _opt(False, "create the Hub repo private")

    @property
    def cycle_epochs(self) -> int:
        """The epochs of one --cycles cycle: the --swa average takes the weights at the end of each."""
        return self.epochs // self.cycles

    @property
    def carve_seed(self) -> int:
        """The seed that chooses the images: --split-seed, else --seed."""
        return self.seed if self.split_seed is None else self.split_seed

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def build_parser() -> argparse.ArgumentParser:
    recipe = DEFAULT_RECIPE.relative_to(REPO_ROOT)
    parser = argparse.ArgumentParser(
        prog="python trainers/finetune.py",
        description="Fine-tune a timm backbone on an image dataset and write a Hub-ready run folder. "
                    f"Without --config, --dataset, --data-dir or --resume it runs {recipe} (EfficientNet-Lite0 with "
                    "offline ImageNet weights on the CIFAR-10 sample in data/sample, a few minutes on a CPU), with "
                    "the flags given on top. The defaults below apply where neither that recipe nor --config sets "
                    "a value.",
    )
    parser.add_argument("--config", help=f"YAML file of these options; flags given here override it "
                                          f"(default: {recipe} when no data is named)")
    for f in dataclasses.fields(TrainConfig):
        flag = flag_of(f.name)
        # SUPPRESS keeps unset flags out of the namespace (a --config file may set them), so the help names the
        # dataclass default itself: ArgumentDefaultsHelpFormatter shows nothing for SUPPRESS.
        kwargs = {"help": _help(f.metadata["help"], f.default), "default": argparse.SUPPRESS}
        if f.type == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _arg_type(f.type)
            kwargs["choices"] = f.metadata.get("choices")
        parser.add_argument(flag, **kwargs)
    return parser


def flag_of(field_name: str) -> str:
    """The command-line flag of a TrainConfig field: `batch_size` -> `--batch-size`."""
    return "--" + field_name.replace("_", "-")


def _help(text: str, default: Any) -> str:
    """The flag's help with its default, unless the text already says what an unset flag means."""
    return text if "(default: " in text else f"{text} (default: {'none' if default is None else default})"


def _arg_type(annotation: str) -> type:
    base = annotation.replace(" | None", "")
    return {"int": int, "float": float, "str": str}[base]


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    argv = sys.argv[1:] if argv is None else argv
    args = vars(build_parser().parse_args(argv))
    values: dict[str, Any] = {}
    if (path := args.pop("config", None)) and args.get("resume"):
        raise ConfigError(f"--config {path} with --resume: a resumed run goes on with its own train_config.yaml; "
                          "give the flags it may change instead")
    if path:
        values |= load_yaml(Path(path))
    elif not {"dataset", "data_dir", "resume"} & set(args):
        # No data named: the default recipe, with the flags given on top (`--model resnet50` alone runs).
        values |= load_yaml(DEFAULT_RECIPE)
    if resume := args.get("resume"):
        # A resumed run continues with the configuration it was started with; flags given now may change only how
        # and where it goes on (RESUME_MAY_CHANGE).
        recorded = load_yaml(Path(resume) / TRAIN_CONFIG)
        check_resume_flags(resume, recorded, args)
        values |= recorded
    values |= args
    return check_values(TrainConfig(**values))


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
# What a resumed run may be given anew: how and where it goes on (up to more epochs), and how it is evaluated.
# Everything else made its checkpoint (the model, the data's classes and carve, the optimisation) and stays.
RESUME_MAY_CHANGE = frozenset({
    "data_dir", "skip_corrupt", "workers", "pipeline", "feature_cache_dir", "test_img_size", "crop_pct", "epochs",
    "keep", "early_stop", "time_limit", "amp", "channels_last", "compile", "fused_optimizer", "deterministic",
    "device", "checkpoint_every", "output", "name", "resume", "record", "db", "push_to_hub", "private",
})


def check_resume_flags(resume: str, recorded: dict[str, Any], given: dict[str, Any]) -> None:
    """Refuse flags that would make a resumed run another one (before anything is read or written)."""
    def comparable(key: str, value: Any) -> Any:  # a short model name is its timm name
        return SHORT_NAMES.get(value, value) if key == "model" else value

    was = {key: recorded.get(key, _DEFAULTS.get(key)) for key in given}
    changed = [f"{flag_of(key)} {value} (the run's: {was[key]})" for key, value in given.items()
               if key not in RESUME_MAY_CHANGE and comparable(key, value) != comparable(key, was[key])]
    if changed:
        raise ConfigError(f"--resume {resume}: {'; '.join(changed)}: a resumed run goes on as it was started; "
                          f"to train on from its weights as a new run, give --weights {resume} instead")


def check_values(cfg: TrainConfig) -> TrainConfig:
    """Numbers that are not finite or outside their field's `minimum`/`maximum`, and a --val-groups that is no regex,
    are refused here, for flags and YAML alike (argparse sees only flags)."""
    for f in dataclasses.fields(cfg):
        value, minimum, maximum = getattr(cfg, f.name), f.metadata["minimum"], f.metadata["maximum"]
        given = f"{flag_of(f.name)} {value}"
        if isinstance(value, float) and not math.isfinite(value):  # NaN passes every comparison
            raise ConfigError(f"{given}: give a finite number")
        if minimum is not None and value is not None and value < minimum:
            raise ConfigError(f"{given}: give at least {minimum}")
        if maximum is not None and value is not None and value > maximum:
            raise ConfigError(f"{given}: give at most {maximum}")
    if cfg.val_groups not in (None, BY_SUBJECT):
        try:
            re.compile(cfg.val_groups)
        except re.error as err:
            raise ConfigError(f"--val-groups {cfg.val_groups!r}: not a regular expression ({err})") from None
    return cfg


def load_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"configuration file not found: {path}")
    try:
        data = yaml.safe_load(path.read_bytes()) or {}  # bytes: a bad encoding is a YAMLError too
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})".replace("\n", " ")) from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected option: value lines, found a {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{path}: unknown options {unknown}")
    return {key: _yaml_value(fields[key], value, path) for key, value in data.items()}


def _yaml_value(f: dataclasses.Field, value: Any, path: Path) -> Any:
    """A YAML value as its flag would take it: of the field's type, one of its choices. YAML reads `1e-3` as a
    string, which becomes the float its flag would make of it; `4.5` is no integer and `'no'` no boolean."""
    where = f"{path}: {f.name}: {value!r}"
    if value is None:
        if "None" not in f.type:
            raise ConfigError(f"{where}: give a value")
        return None
    if f.type == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: give true or false")
        return value
    kind = _arg_type(f.type)
    wrong_type = ConfigError(f"{where}: give {'an integer' if kind is int else f'a {kind.__name__}'}")
    if isinstance(value, bool) or (kind is int and isinstance(value, float)) or isinstance(value, list | dict):
        raise wrong_type
    try:
        value = kind(value)
    except ValueError:
        raise wrong_type from None
    if (choices := f.metadata.get("choices")) and value not in choices:
        raise ConfigError(f"{where}: choose from {', '.join(map(str, choices))}")
    return value
