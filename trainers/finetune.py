#!/usr/bin/env python
"""Fine-tune a timm backbone on an image dataset and write a Hub-ready run folder.

    python trainers/finetune.py                                   # the embedded default, offline, CPU
    python trainers/finetune.py --dataset chest-xray --data-dir ~/data/chest_xray --model resnet50 \
        --weights resnet50.pth --strategy linear-probe --balanced-val --class-weights
    torchrun --nproc_per_node=4 trainers/finetune.py --config trainers/recipes/cifar10-arena.yaml

The story, top to bottom: configuration -> data -> model -> run folder -> training epochs (checkpoint
every epoch) -> the kept weights (--keep last|best) -> final evaluation -> run folder files, model card,
leaderboard row.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from timm.data import Mixup, create_transform, resolve_data_config
from timm.loss import SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.scheduler.scheduler import Scheduler
from timm.utils import ModelEmaV3
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, DistributedSampler, WeightedRandomSampler

import runfolder as R
from trainers import data as D
from trainers import preload as P
from trainers.augment import AUGMENTATIONS
from trainers.config import REPO_ROOT, ConfigError, TrainConfig, parse_config
from trainers.distill import (
    distillation_targets,
    load_teachers,
    local_teachers,
    teacher_metrics,
    teacher_probabilities,
    teacher_runs,
    unknown_teachers,
)
from trainers.evaluate import (
    ClassificationMetrics,
    calibration_metrics,
    classification_metrics,
    fit_temperature,
    predictions_frame,
)
from trainers.feature_cache import FeatureCache, FeatureHead, cache_key, cacheable
from trainers.inference import ImageError, Predictor, eval_resize_side, image_mode
from trainers.lr_find import LR_FIND_STEPS, LRRangeTest
from trainers.models import (
    ModelError,
    channels_last_hazard,
    check_weight_labels,
    create_backbone,
    first_stage_metrics,
    first_stages,
    one_line,
    param_groups,
    pretrained_tag,
    set_trainable,
)
from trainers.progress import progress
from trainers.report import measure_cost, print_summary, run_environment

PROGRESS_EVERY = 10  # steps between progress-bar updates (each one syncs with the device)


class RunError(ValueError):
    """A run folder that cannot be created or resumed."""


# Bad input, said in one line by main(): option values, unreadable data or images, unknown models or weights,
# run folders.
USER_ERRORS = (ConfigError, D.DataError, ImageError, ModelError, RunError)


class Distributed:
    """Rank/world of this process; a single process when not launched by torchrun."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1:
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order (a list of one when not distributed)."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        if self.world == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def main(argv: list[str] | None = None) -> Path:
    """Train one run, or with --seeds N a seed group of N runs; returns the (first) run folder."""
    try:
        cfg = parse_config(argv)
        return train(cfg) if cfg.seeds == 1 else train_seeds(cfg)[0]
    except USER_ERRORS as err:  # said in one line; a killed run's last checkpoint stays resumable
        raise SystemExit(f"error: {user_message(err)}") from None
    except KeyboardInterrupt:  # checkpoints are written atomically: the last one is whole
        raise SystemExit("interrupted: a run folder that has a checkpoint (each epoch's end, and every "
                         "--checkpoint-every steps) goes on with --resume RUN_FOLDER; one without has nothing to "
                         "resume") from None


def user_message(error: Exception) -> str:
    """The error's message. Raised in a DataLoader worker, it comes back as that worker's traceback, whose last
    line is `module.ErrorType: message`: the message is kept, the traceback left out."""
    text = str(error).strip()
    return text.splitlines()[-1].split(": ", 1)[-1] if "Original Traceback" in text else text


def train_seeds(cfg: TrainConfig) -> list[Path]:
    """--seeds N: the same configuration trained with seeds seed .. seed+N-1, one run folder each (<name>-seed<S>);
    the leaderboard groups runs that differ only in the seed."""
    if cfg.resume:
        raise ConfigError("--seeds trains new runs: no --resume (resume each run folder on its own)")
    base = cfg.name or default_run_name(cfg)
    seeds = range(cfg.seed, cfg.seed + cfg.seeds)
    for seed in seeds:  # every folder before the first training: a clash must not cost a finished run's time
        new_run_dir(Path(cfg.output), f"{base}-seed{seed}")
    runs = [train(dataclasses.replace(cfg, seed=seed, seeds=1, name=f"{base}-seed{seed}")) for seed in seeds]
    print(f"seed group of {len(runs)} runs: {', '.join(run.name for run in runs)}")
    return runs


def train(cfg: TrainConfig) -> Path:
    started = time.time()  # --time-limit counts from here: data loading (and caching) included
    ddp = Distributed()
    device = training_device(cfg, ddp)
    seed_everything(cfg.seed)

    # ---- data: read and split before anything is written, so bad input leaves no trace
    check_config(cfg)
    splits = prepare_data(cfg)

    # ---- model, its input pipeline and its optimisation
    weight_notes = check_weight_labels(cfg.weights, splits.classes)
    model, notes = create_backbone(cfg.model, len(splits.classes), cfg.pretrained, cfg.weights,
                                   drop_rate=cfg.drop_rate,
                                   class_ids=splits.class_ids if cfg.head_init == "auto" else None)
    inputs = model_inputs(cfg, model, splits, device, ddp)
    steps_per_epoch = math.ceil(len(splits.train) / (cfg.batch_size * ddp.world))
    trainer = build_trainer(cfg, model, splits.counts("train"), steps_per_epoch, device, ddp)
    teachers = load_teachers(cfg.teachers, splits.classes, device) if cfg.teachers else []

    # ---- run folder: created now, checkpointed every epoch, completed at the end
    run = Run(trainer, splits, inputs, open_run_dir(cfg, ddp), started, teachers)
    if cfg.resume:  # before its train_config.yaml is rewritten: a resume that cannot go on leaves the run as it was
        run.state = resume_from(run.run_dir, trainer, splits.classes)
        run.resumed_wall_s = run.state.wall_s
    run.state.classes = splits.classes  # also into a checkpoint from before it kept them
    if ddp.main:
        R.write_train_config(run.run_dir, cfg.to_dict() | {"resume": None})
        for note in notes + weight_notes + splits.notes:
            print(f"note: {note}")
        print(f"run folder: {run.run_dir}")
    before_first_epoch(run)
    if cfg.resume:
        print(f"resuming {run.run_dir} at epoch {run.state.epoch + 1}, step {run.state.step}")

    # ---- epochs, then the kept weights evaluated and written
    finish(run, train_epochs(run))
    if ddp.world > 1:
        dist.destroy_process_group()
    return run.run_dir


def check_config(cfg: TrainConfig) -> None:
    """What can be refused before the data loads: sizes, the schedule, the optimiser, the teachers."""
    check_sizes(cfg)
    check_schedule(cfg)
    check_optimisation(cfg)
    check_distillation(cfg)


def model_inputs(cfg: TrainConfig, model: torch.nn.Module, splits: D.DatasetSplits, device: torch.device,
                 ddp: Distributed) -> Inputs:
    """The model's input pipeline; a run that caches a linear probe's features, or evaluates only (--epochs 0),
    builds no training transform."""
    train_data_config, data_config = data_configs(cfg, model)
    mode = image_mode(data_config["input_size"][0])
    cached = caches_features(cfg, model, ddp)
    train_transform = (training_transform(cfg, splits, train_data_config, mode, device)
                       if cfg.epochs > 0 and not cached else None)
    return Inputs(data_config, mode, create_transform(**data_config, is_training=False),
                  eval_resize_side(data_config), cached, train_transform)


def before_first_epoch(run: Run) -> None:
    """What a run computes once before it trains: a linear probe's cached features, the teachers' probabilities,
    --lr-find's range test."""
    cfg, trainer = run.cfg, run.trainer
    if run.inputs.caches_features:  # the frozen backbone's one pass; the head trains on its output
        trainer.features = run.inputs.train_transform = cache_features(cfg, trainer.model, run.splits,
                                                                       run.inputs.data_config, run.image_loader)
        trainer.train_model = FeatureHead(trainer.model)
    if run.teachers:
        started = time.time()
        trainer.teacher_probs = teacher_probabilities(run.teachers, run.splits.train, cfg.skip_corrupt)
        run.teachers = []  # their probabilities are all the training needs of them
        if run.ddp.main:
            print(f"teachers: their probabilities on {len(run.splits.train):,} training images in "
                  f"{time.time() - started:.0f} s")
    if cfg.lr_find and run.ddp.main:
        suggestion = find_lr(trainer, run.train_loader(0), run.run_dir)
        print(f"lr_find: suggested --lr {suggestion:.2e} (plot: {run.run_dir / R.LR_FIND_PLOT})")


def train_epochs(run: Run) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Train, validate, remember the best epoch and checkpoint, epoch after epoch; returns the last epoch's
    validation logits, targets and indices (None when no epoch ran)."""
    cfg, ddp, trainer, state = run.cfg, run.ddp, run.trainer, run.state
    val_loader = run.eval_loader("val")
    last_val = None
    for epoch in range(state.epoch, cfg.epochs):
        set_trainable(trainer.model, cfg.strategy, epoch, cfg.epochs)
        seed_everything(epoch_seed(cfg, epoch))
        skip = state.step if epoch == state.epoch else 0
        if skip and state.rng:
            restore_rng(state.rng)
        callbacks = [MidEpochCheckpoint(run, epoch)] if cfg.checkpoint_every and ddp.main else []
        stats = train_one_epoch(trainer, run.train_loader(epoch, skip), epoch, skip, callbacks)
        if trainer.opt.swa is not None and (epoch + 1) % cfg.cycle_epochs == 0:  # a cycle's end
            trainer.opt.swa.update_parameters(trainer.model)
        last_val = run.evaluate(val_loader)
        state.end_epoch(stats, run.wall_s())
        if ddp.main:
            record_epoch(trainer, state, stats, classification_metrics(*last_val[:2], run.splits.classes))
        trainer.opt.scheduler.step(epoch + 1, ddp.broadcast(state.history[-1]["val_acc"] if ddp.main else None))
        if ddp.main:
            R.write_history(run.run_dir, state.history)
            save_state(run.run_dir, trainer, state)
        if ddp.broadcast(ddp.main and early_stop(cfg, state)):
            print(f"early stop: no improvement for {cfg.early_stop} epochs")
            break
        if cfg.time_limit and ddp.broadcast(time.time() - run.started) > cfg.time_limit:
            print(f"time limit: {cfg.time_limit:.0f} s passed after epoch {epoch + 1}")
            break
    return last_val


def finish(run: Run, last_val: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None) -> None:
    """The kept weights (--keep), evaluated on the test split (else validation), written into the run folder."""
    cfg, ddp, trainer, state, splits = run.cfg, run.ddp, run.trainer, run.state, run.splits
    if cfg.keep == "best" and state.best:
        trainer.eval_model.load_state_dict(ddp.broadcast(state.best.weights if ddp.main else None))
    # The kept weights' validation logits: the last epoch's, when those were the weights it validated.
    val_logits, val_targets, val_indices = (
        last_val if last_val is not None and cfg.keep == "last" else run.evaluate(run.eval_loader("val")))
    val = classification_metrics(val_logits, val_targets, splits.classes) if ddp.main else None
    if ddp.main and not state.history:  # --epochs 0: the starting weights' validation, as epoch 0
        untrained = EpochStats(loss=math.nan, acc=math.nan, images=0, seconds=0.0)
        state.history.append(history_row(0, untrained, val, trainer.opt.optimizer, run.wall_s()))
        R.write_history(run.run_dir, state.history)
    logits, targets, indices = (run.evaluate(run.eval_loader("test")) if splits.test else
                                (val_logits, val_targets, val_indices))
    if ddp.main:
        eval_samples = splits.test or splits.val
        evaluation = Evaluation(logits, targets, [eval_samples[i].sample_id for i in indices.tolist()],
                                fit_temperature(val_logits, val_targets), val.top1)  # on validation, never test
        metrics = final_metrics(trainer, splits, run.inputs.data_config, evaluation, state, run.wall_s())
        write_run(run.run_dir, trainer.eval_model, splits, run.inputs.data_config, evaluation, metrics)
        print_summary(run.run_dir, metrics)
        publish_and_record(cfg, run.run_dir)


def training_device(cfg: TrainConfig, ddp: Distributed) -> torch.device:
    try:
        device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError:
        raise ConfigError(f"--device {cfg.device}: give cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {cfg.device}: PyTorch sees no CUDA device")
    if device.type == "cuda":
        device = torch.device("cuda", ddp.local_rank)
        torch.cuda.set_device(device)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    return device


# ------------------------------------------------------------------------------------------------ data


def prepare_data(cfg: TrainConfig) -> D.DatasetSplits:
    data_dir = cfg.data_dir
    if data_dir and not Path(data_dir).exists() and (REPO_ROOT / data_dir).exists():
        data_dir = str(REPO_ROOT / data_dir)  # recipes name repo-relative sample paths
    splits = D.load_dataset(cfg.dataset, data_dir)
    groups = D.subject_regex(cfg.dataset, cfg.val_groups)
    D.make_val_split(splits, D.Carve(cfg.val_split, cfg.balanced_val, cfg.carve_seed, groups))
    splits.train = D.subsample(splits.train, cfg.max_train_samples, cfg.carve_seed)
    splits.val = D.subsample(splits.val, cfg.max_eval_samples, cfg.carve_seed)
    splits.test = D.subsample(splits.test, cfg.max_eval_samples, cfg.carve_seed)
    return splits


def check_sizes(cfg: TrainConfig) -> None:
    for flag, size in (("--img-size", cfg.img_size), ("--test-img-size", cfg.test_img_size)):
        if size is not None and size < 8:
            raise ConfigError(f"{flag} {size}: give a size in pixels, at least 8")
    if cfg.crop_pct is not None and not 0 < cfg.crop_pct <= 1:
        raise ConfigError(f"--crop-pct {cfg.crop_pct}: give the centre crop's share of the resized image, in (0, 1]")


def check_schedule(cfg: TrainConfig) -> None:
    if cfg.cycles < 1 or cfg.epochs % cfg.cycles:
        raise ConfigError(f"--cycles {cfg.cycles}: give a number of cycles that divides --epochs {cfg.epochs}")
    if cfg.cycles > 1 and cfg.sched not in CYCLIC_SCHEDULES:
        raise ConfigError(f"--cycles {cfg.cycles}: --sched {cfg.sched} has no cycles; use one of "
                       f"{', '.join(CYCLIC_SCHEDULES)}")
    if cfg.swa and (cfg.cycles < 2 or cfg.ema):
        raise ConfigError("--swa averages the weights at the end of each cycle: give --cycles 2 or more, and no --ema "
                       "(a run keeps one average of its weights)")


def check_optimisation(cfg: TrainConfig) -> None:
    """--opt and --sched name what timm builds: tried on one stand-in parameter, before the data loads."""
    stand_in = [torch.nn.Parameter(torch.zeros(1))]
    try:
        optimizer = create_optimizer_v2(stand_in, opt=cfg.opt, lr=cfg.lr)
    except ValueError as error:
        raise ConfigError(f"--opt {cfg.opt}: {error}; timm.optim.list_optimizers() names them") from None
    try:
        create_scheduler_v2(optimizer, sched=timm_schedule(cfg.sched), num_epochs=1, updates_per_epoch=1)
    except ValueError as error:
        raise ConfigError(f"--sched {cfg.sched}: {error}") from None


def timm_schedule(sched: str) -> str:
    return "constant" if sched == "none" else sched  # --sched none: timm's constant learning rate


def check_distillation(cfg: TrainConfig) -> None:
    if cfg.teachers and (cfg.mixup or cfg.cutmix or not 0 <= cfg.distill_weight <= 1):
        raise ConfigError("--teachers: give --distill-weight between 0 and 1, and no --mixup or --cutmix (the teachers "
                       "saw each image whole)")
    if unknown := unknown_teachers(cfg.teachers):
        raise ConfigError(f"--teachers: {', '.join(unknown)}: neither a finished run folder nor an hf-hub: id")
    if cfg.teachers is not None and not teacher_runs(cfg.teachers):
        raise ConfigError(f"--teachers {cfg.teachers!r}: names no run")


def data_configs(cfg: TrainConfig, model: torch.nn.Module) -> tuple[dict, dict]:
    """timm's data configs for training (--img-size) and for evaluation (--test-img-size, --crop-pct)."""
    in_chans = model.pretrained_cfg["input_size"][0]  # timm assumes 3 when img_size is overridden

    def at(size: int | None, **args: float) -> dict:
        return resolve_data_config(({"img_size": size, "in_chans": in_chans} if size else {}) | args, model=model)

    crop = {"crop_pct": cfg.crop_pct} if cfg.crop_pct else {}
    return at(cfg.img_size), at(cfg.test_img_size or cfg.img_size, **crop)


def training_transform(cfg: TrainConfig, splits: D.DatasetSplits, data_config: dict, mode: str,
                       device: torch.device) -> Callable | P.DeviceAugment:
    """The timm training transform (`--pipeline workers`), or the preloaded images' batched stand-in for it."""
    augment = AUGMENTATIONS[cfg.aug]
    if cfg.pipeline == "workers":
        return create_transform(**data_config, is_training=True, **augment.timm_args())
    side = data_config["input_size"][-1]
    store = P.preload(splits.train, side, mode, device, cfg.workers, cfg.skip_corrupt)
    splits.train = store.samples  # without the unreadable images --skip-corrupt dropped
    return P.DeviceAugment(store, side, augment, data_config["mean"], data_config["std"])


def epoch_seed(cfg: TrainConfig, epoch: int) -> int:
    """The seed of everything random in one epoch: its batch order, crops and dropout."""
    return cfg.seed * 1000 + epoch


def make_loader(cfg: TrainConfig, samples: list[D.Sample], transform: Callable | P.DeviceAugment | FeatureCache,
                mode: str, epoch: int,
                ddp: Distributed, skip_batches: int = 0) -> DataLoader | P.PreloadedBatches:
    """Training loader whose order depends only on (seed, epoch), so a resumed run sees the same batches.

    `transform` is a timm transform (decode in workers), a `DeviceAugment` (images preloaded on the device), or
    a `FeatureCache` (a linear probe's cached features).
    """
    generator = torch.Generator().manual_seed(epoch_seed(cfg, epoch))
    if ddp.world > 1:
        sampler = DistributedSampler(samples, ddp.world, ddp.rank, shuffle=True, seed=cfg.seed)
        sampler.set_epoch(epoch)
    elif cfg.balanced_sampler:
        labels = [s.label for s in samples]
        per_class = D.class_weights(np.bincount(labels).tolist())
        sampler = WeightedRandomSampler(per_class[labels], len(samples), generator=generator)
    else:
        sampler = torch.randperm(len(samples), generator=generator).tolist()
    order = list(sampler)[skip_batches * cfg.batch_size:]
    drop_last = len(order) > cfg.batch_size
    if isinstance(transform, FeatureCache):
        return transform.batches("train", order, cfg.batch_size, drop_last)
    if isinstance(transform, P.DeviceAugment):
        return P.PreloadedBatches(transform, order, cfg.batch_size, drop_last, seed=epoch_seed(cfg, epoch),
                                  first_batch=skip_batches)
    dataset = D.ImageDataset(samples, transform, mode, cfg.skip_corrupt)
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=order, num_workers=cfg.workers,
                      collate_fn=D.collate_skip_none, drop_last=drop_last, generator=generator,
                      persistent_workers=False, pin_memory=torch.cuda.is_available())


def make_eval_loader(cfg: TrainConfig, samples: list[D.Sample], transform: Callable, mode: str, ddp: Distributed,
                     min_side: int) -> DataLoader:
    """Each rank evaluates every world-th sample; `predict` gathers them back into dataset order.

    Decodes as `Predictor` does (JPEGs straight at `min_side`), so the recorded metrics are the apps' figures."""
    dataset = D.ImageDataset(samples, transform, mode, cfg.skip_corrupt, min_side)
    shard = list(range(ddp.rank, len(samples), ddp.world))
    return DataLoader(dataset, batch_size=cfg.batch_size * 2, sampler=shard, num_workers=cfg.workers,
                      collate_fn=D.collate_skip_none)


def caches_features(cfg: TrainConfig, model: torch.nn.Module, ddp: Distributed) -> bool:
    """Whether this run trains its head on cached features (trainers/feature_cache.py): a single-process linear
    probe whose classifier starts from a pooled vector."""
    if cfg.strategy != "linear-probe" or not cfg.feature_cache:
        return False
    why_not = cacheable(model) or ("it is distributed; each process would need every image" if ddp.world > 1 else
                                   "--cutmix cuts images, not features" if cfg.cutmix else None)
    if why_not and ddp.main:
        print(f"note: features not cached ({why_not}); the backbone runs at every step")
    if why_not is None and cfg.aug != TrainConfig.aug and ddp.main:
        print(f"note: --aug {cfg.aug} does not apply: each image's features are cached once, unaugmented "
              "(--no-feature-cache trains the head on augmented images, the backbone running at every step)")
    return why_not is None


def cache_features(cfg: TrainConfig, model: torch.nn.Module, splits: D.DatasetSplits, data_config: dict,
                   loader_of: Callable[[list[D.Sample]], Iterable]) -> FeatureCache:
    """Every split's features, computed once (or read from --feature-cache-dir); images that --skip-corrupt
    skipped leave their split."""
    samples = {"train": splits.train, "val": splits.val} | ({"test": splits.test} if splits.test else {})
    cache_file = None
    if cfg.feature_cache_dir:
        key = cache_key(model, data_config, {split: [s.sample_id for s in ss] for split, ss in samples.items()})
        cache_file = Path(cfg.feature_cache_dir) / f"{key}.safetensors"
    cache = FeatureCache.build(model, {split: loader_of(ss) for split, ss in samples.items()},
                               next(model.parameters()).device, cache_file)
    for split, kept in cache.indices.items():
        if len(kept) < len(samples[split]):
            setattr(splits, split, [samples[split][i] for i in kept.tolist()])
    sizes = ", ".join(f"{len(f):,} {split}" for split, f in cache.features.items())
    print(f"feature cache: {sizes} features of {cache.dim} values, computed in {cache.seconds:.0f} s")
    return cache


# -------------------------------------------------------------------------------------------- training

CYCLIC_SCHEDULES = ("cosine", "tanh", "poly")  # timm's schedulers that take cycle_limit (--cycles)
FUSED_OPTIMIZERS = ("adam", "adamw", "sgd", "momentum", "nesterov")  # timm names of torch optimizers with fused=


class WeightedSoftTargetCrossEntropy(torch.nn.Module):
    """Soft-target cross-entropy (Mixup's targets) with per-class weights (--class-weights).

    timm's SoftTargetCrossEntropy takes no weights. Each sample counts by its target's weight, `target @ weight`,
    and the mean divides by their sum: on one-hot targets this is torch's `CrossEntropyLoss(weight=...)`.
    """

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        per_sample = torch.sum(-target * torch.log_softmax(logits, dim=-1), dim=-1)
        sample_weight = target @ self.weight.to(target.dtype)
        return (per_sample * sample_weight).sum() / sample_weight.sum()


@dataclass
class Optimisation:
    """Everything a training step needs besides the model and the batch."""

    optimizer: torch.optim.Optimizer
    scheduler: Scheduler
    loss: torch.nn.Module
    mixup: Mixup | None
    ema: ModelEmaV3 | None
    swa: AveragedModel | None  # the equal average of the weights at each cycle's end (--swa)
    amp: AbstractContextManager  # bf16 autocast on GPU with --amp, else a no-op


def build_optimisation(cfg: TrainConfig, model: torch.nn.Module, class_counts: list[int], steps_per_epoch: int,
                       device: torch.device) -> Optimisation:
    groups = param_groups(model, cfg.lr, cfg.backbone_lr_scale if cfg.strategy != "linear-probe" else 1.0,
                          cfg.weight_decay)
    # One kernel for all parameters instead of a loop over them (torch's fused=True, CPU and GPU alike).
    fused = {"fused": True} if cfg.fused_optimizer and cfg.opt.lower() in FUSED_OPTIMIZERS else {}
    optimizer = create_optimizer_v2(groups, opt=cfg.opt, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                    momentum=cfg.momentum, **fused)
    # Stepped per update, except timm's plateau schedule, which steps per epoch on validation top-1. timm's
    # schedules need an epoch; --epochs 0 (evaluation only) never steps this one.
    scheduler, _ = create_scheduler_v2(
        optimizer, sched=timm_schedule(cfg.sched),
        num_epochs=max(cfg.cycle_epochs, 1), cycle_limit=cfg.cycles, cycle_decay=1.0,
        warmup_epochs=cfg.warmup_epochs, decay_epochs=cfg.decay_epochs, decay_rate=cfg.decay_rate,
        step_on_epochs=cfg.sched == "plateau", updates_per_epoch=steps_per_epoch,
    )
    mixup = (Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, label_smoothing=cfg.label_smoothing,
                   num_classes=len(class_counts)) if cfg.mixup or cfg.cutmix else None)
    weights = D.class_weights(class_counts).to(device) if cfg.class_weights else None
    if mixup or cfg.teachers:  # soft targets
        loss = WeightedSoftTargetCrossEntropy(weights) if weights is not None else SoftTargetCrossEntropy()
    else:
        loss = torch.nn.CrossEntropyLoss(weight=weights, label_smoothing=cfg.label_smoothing)
    ema = ModelEmaV3(model, decay=cfg.ema_decay, use_warmup=cfg.ema_warmup) if cfg.ema else None
    swa = AveragedModel(model, use_buffers=True) if cfg.swa else None
    return Optimisation(
        optimizer, scheduler, loss, mixup, ema, swa,
        torch.autocast("cuda", dtype=torch.bfloat16) if cfg.amp and device.type == "cuda" else nullcontext())


@dataclass
class Trainer:
    """The model, how it learns, and where: what `train_one_epoch` needs besides the batches."""

    cfg: TrainConfig
    model: torch.nn.Module  # the module whose weights are saved
    train_model: torch.nn.Module  # what the step calls: `model`, compiled and/or wrapped in DDP
    opt: Optimisation
    device: torch.device
    ddp: Distributed
    steps_per_epoch: int
    channels_last: bool  # --channels-last, unless the model has a layer that breaks in it on this device
    features: FeatureCache | None = None  # a linear probe's cached features; the batches are then features
    teacher_probs: torch.Tensor | None = None  # --teachers: their probabilities, one row per training sample

    @property
    def eval_model(self) -> torch.nn.Module:
        """The weights that are validated and kept: the EMA's with --ema; with --swa, the average once the first
        cycle has ended."""
        if self.opt.ema:
            return self.opt.ema.module
        if self.opt.swa is not None and self.opt.swa.n_averaged > 0:
            return self.opt.swa.module
        return self.model

    @property
    def evaluator(self) -> torch.nn.Module:
        """What evaluation batches go through: the kept model, or its head alone on cached features."""
        return FeatureHead(self.eval_model) if self.features is not None else self.eval_model


def build_trainer(cfg: TrainConfig, model: torch.nn.Module, class_counts: list[int], steps_per_epoch: int,
                  device: torch.device, ddp: Distributed) -> Trainer:
    model.to(device)
    hazard = channels_last_hazard(model, device) if cfg.channels_last else None
    if hazard and ddp.main:
        print(f"note: channels-last off: {hazard}")
    channels_last = cfg.channels_last and hazard is None
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = build_optimisation(cfg, model, class_counts, steps_per_epoch, device)
    train_model = torch.compile(model) if cfg.compile else model
    if ddp.world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            train_model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.strategy == "gradual")
    return Trainer(cfg, model, train_model, opt, device, ddp, steps_per_epoch, channels_last)


class StepCallback:
    """Hooks of the one training loop, called around every optimizer step (fastai's callbacks, in miniature)."""

    def before_step(self, step: int) -> None:
        """`step`: optimizer steps done so far in this epoch."""

    def after_step(self, step: int, loss: torch.Tensor, seen: int, seconds: float) -> bool:
        """Called after step `step` (1-based in the epoch); return True to end the epoch here."""
        return False


@dataclass
class EpochStats:
    loss: float
    acc: float
    images: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.images / max(self.seconds, 1e-9)


def train_one_epoch(trainer: Trainer, loader: Iterable, epoch: int, first_step: int = 0,
                    callbacks: Sequence[StepCallback] = ()) -> EpochStats:
    """One pass over `loader` (from batch `first_step` on): loss, accuracy and speed of the epoch."""
    cfg, model, opt, device, ddp = trainer.cfg, trainer.model, trainer.opt, trainer.device, trainer.ddp
    steps_per_epoch = trainer.steps_per_epoch
    trainer.train_model.train()
    if cfg.strategy == "linear-probe":  # frozen backbone: keep its batch-norm statistics too
        model.eval()
        model.get_classifier().train()
    # Running loss and correct counts stay on the device: reading them every step would force a host sync.
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    seen, step = 0, first_step
    start = time.perf_counter()
    bar = progress(loader, f"epoch {epoch + 1}/{cfg.epochs}", show=ddp.main, initial=first_step,
                   total=steps_per_epoch, unit="batch")
    for batch in bar:
        if batch is None:
            continue
        for callback in callbacks:
            callback.before_step(step)
        images, labels, targets = training_batch(trainer, batch)
        with opt.amp:
            logits = trainer.train_model(images)
            loss = opt.loss(logits, targets if opt.mixup is None or targets.ndim > 1 else
                            torch.nn.functional.one_hot(targets, logits.shape[-1]).float())
        step += 1
        optimizer_step(trainer, loss, epoch * steps_per_epoch + step)
        sums += torch.stack([loss.detach().double() * len(images), (logits.argmax(-1) == labels).sum().double()])
        seen += len(images)
        elapsed = time.perf_counter() - start
        if step % PROGRESS_EVERY == 0 or step == steps_per_epoch:
            loss_sum, correct = sums.tolist()
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}",
                            img_s=f"{seen * ddp.world / elapsed:.1f}", refresh=False)  # shown at the bar's own pace
        if any([callback.after_step(step, loss, seen * ddp.world, elapsed) for callback in callbacks]):
            break
    seconds = time.perf_counter() - start
    totals = torch.cat([sums, torch.tensor([seen], dtype=torch.float64, device=device)])
    if ddp.world > 1:
        dist.all_reduce(totals)
    total_loss, correct, seen = totals.tolist()
    return EpochStats(total_loss / max(seen, 1), correct / max(seen, 1), int(seen), seconds)


def training_batch(trainer: Trainer, batch: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch on the device in the model's memory layout: images, labels, and the targets the loss compares with
    (the labels; Mixup's mixed ones; with --teachers, the labels blended with the teachers' probabilities)."""
    cfg, opt, device = trainer.cfg, trainer.opt, trainer.device
    images, labels, indices = batch
    images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
    if trainer.channels_last and images.ndim == 4:
        images = images.contiguous(memory_format=torch.channels_last)
    targets = labels
    if opt.mixup is not None and len(images) % 2 == 0:
        images, targets = opt.mixup(images, labels)
    if trainer.teacher_probs is not None:
        targets = distillation_targets(labels, trainer.teacher_probs[indices.cpu()], cfg.distill_weight,
                                       cfg.label_smoothing)
    return images, labels, targets


def optimizer_step(trainer: Trainer, loss: torch.Tensor, update: int) -> None:
    """Backward, clip (--clip-grad), step; then the per-update schedule and the EMA at the run's `update` count."""
    opt = trainer.opt
    opt.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if trainer.cfg.clip_grad:
        torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), trainer.cfg.clip_grad)
    opt.optimizer.step()
    opt.scheduler.step_update(update)
    if opt.ema is not None:
        opt.ema.update(trainer.model, step=update)


class MidEpochCheckpoint(StepCallback):
    """--checkpoint-every N: a resumable checkpoint every N optimizer steps (the epoch's end writes its own)."""

    def __init__(self, run: Run, epoch: int) -> None:
        self.run, self.epoch = run, epoch

    def after_step(self, step: int, loss: torch.Tensor, seen: int, seconds: float) -> bool:
        run = self.run
        if step % run.cfg.checkpoint_every == 0 and step < run.trainer.steps_per_epoch:
            save_state(run.run_dir, run.trainer, replace(
                run.state, epoch=self.epoch, step=step, rng=capture_rng(), wall_s=run.wall_s(),
                train_images=run.state.train_images + seen, train_seconds=run.state.train_seconds + seconds))
        return False


def find_lr(trainer: Trainer, loader: Iterable, run_dir: Path) -> float:
    """--lr-find: the range test runs as a callback of the training loop; model and optimiser are restored after."""
    saved = copy.deepcopy((trainer.model.state_dict(), trainer.opt.optimizer.state_dict(),
                           trainer.opt.ema.state_dict() if trainer.opt.ema else None))
    test = LRRangeTest(trainer.opt.optimizer, steps=min(LR_FIND_STEPS, trainer.steps_per_epoch))
    train_one_epoch(trainer, loader, epoch=0, callbacks=[test])
    model_state, optimizer_state, ema_state = saved
    trainer.model.load_state_dict(model_state)
    trainer.opt.optimizer.load_state_dict(optimizer_state)
    if trainer.opt.ema:
        trainer.opt.ema.load_state_dict(ema_state)
    test.save(run_dir)
    return test.suggestion()


@torch.inference_mode()
def predict(model: torch.nn.Module, loader: Iterable, device: torch.device, amp: AbstractContextManager,
            ddp: Distributed) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits, targets and dataset indices over the whole split, gathered from every rank, in index order."""
    was_training = model.training
    model.eval()
    parts = []
    for batch in loader:
        if batch is None:
            continue
        images, labels, indices = batch
        with amp:
            logits = model(images.to(device, non_blocking=True))
        parts.append((logits.float(), labels, indices))  # on the device: the host queues every batch first,
    parts = [(logits.cpu(), labels, indices) for logits, labels, indices in parts]  # then waits once
    model.train(was_training)
    gathered = [p for rank_parts in ddp.gather(parts) for p in rank_parts]
    if not gathered:
        raise D.DataError("no readable images in the evaluation split")
    logits, targets, indices = (torch.cat(x) for x in zip(*gathered, strict=True))
    order = indices.argsort()
    return logits[order], targets[order], indices[order]


def history_row(epoch: int, stats: EpochStats, val: ClassificationMetrics, optimizer: torch.optim.Optimizer,
                wall_s: float) -> dict:
    """history.csv's row of `epoch` (1-based; 0: the starting weights of an `--epochs 0` run), as the dict the
    checkpoint keeps."""
    matrix = val.confusion_matrix
    return dataclasses.asdict(R.EpochRow(
        epoch=epoch, train_loss=stats.loss, train_acc=stats.acc, val_loss=val.loss, val_acc=val.top1,
        val_top5=val.top5, val_macro_f1=val.macro_f1, lr=max(g["lr"] for g in optimizer.param_groups),
        seconds=stats.seconds, train_images_per_s=stats.images_per_s, wall_s=wall_s,
        val_per_class_recall=[c.recall for c in val.per_class],  # torchmetrics' (evaluate.py)
        val_confusion_matrix=matrix if len(matrix) <= R.HISTORY_MATRIX_MAX_CLASSES else None))


def record_epoch(trainer: Trainer, state: TrainState, stats: EpochStats, val: ClassificationMetrics) -> None:
    """The epoch just ended (`state.end_epoch`), on the main process: its history row and printed line, and the
    best epoch so far (lowest validation loss)."""
    state.history.append(history_row(state.epoch, stats, val, trainer.opt.optimizer, state.wall_s))
    if state.best is None or val.loss < state.best.loss:
        weights = {key: value.detach().cpu().clone() for key, value in trainer.eval_model.state_dict().items()}
        state.best = BestEpoch(state.epoch, weights, val.loss)
    print(f"epoch {state.epoch}/{trainer.cfg.epochs}: train loss {stats.loss:.4f} acc {stats.acc:.3f} | "
          f"val loss {val.loss:.4f} top1 {val.top1:.3f} | {stats.images_per_s:.1f} img/s")


def early_stop(cfg: TrainConfig, state: TrainState) -> bool:
    return bool(cfg.early_stop) and state.epoch - state.best.epoch >= cfg.early_stop


# ---------------------------------------------------------------------------------- run folder, resume


def open_run_dir(cfg: TrainConfig, ddp: Distributed) -> Path:
    if cfg.resume:
        run_dir = Path(cfg.resume)
        if not (run_dir / R.CHECKPOINT / R.CHECKPOINT_FILE).is_file():
            raise RunError(f"--resume {run_dir}: no {R.CHECKPOINT}/{R.CHECKPOINT_FILE} in it")
        return run_dir
    name = ddp.broadcast(cfg.name or default_run_name(cfg))
    if not ddp.main:
        return Path(cfg.output) / name
    run_dir = new_run_dir(Path(cfg.output), name)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def new_run_dir(output: Path, name: str) -> Path:
    """A new run's folder: `name` (a folder name, not a path) under the folder `output`, holding no earlier run. A
    folder holding only train_config.yaml is a run that stopped before its first checkpoint: nothing to lose."""
    if Path(name).name != name or name in (".", ".."):
        raise RunError(f"--name {name!r}: give a folder name, not a path (--output says where)")
    if output.exists() and not output.is_dir():
        raise RunError(f"--output {output}: a file, not a folder")
    run_dir = output / name
    if run_dir.exists() and {path.name for path in run_dir.iterdir()} - {R.TRAIN_CONFIG}:
        raise RunError(f"run folder {run_dir} already exists (choose another --name, or --resume it)")
    return run_dir


def default_run_name(cfg: TrainConfig) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return "-".join(part.replace(':', '-').replace('/', '-') for part in (cfg.dataset, cfg.model, stamp))


@dataclass
class BestEpoch:
    """The epoch with the lowest validation loss so far (--keep best, --early-stop)."""

    epoch: int  # 1-based
    weights: dict[str, torch.Tensor]  # the evaluated model's, on the CPU
    loss: float = math.inf  # validation loss; inf where a checkpoint recorded none, so any scored epoch beats it


@dataclass
class TrainState:
    """Where training stands; saved in every checkpoint and restored by --resume."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps completed in epoch `epoch` (a mid-epoch checkpoint)
    history: list[dict] = field(default_factory=list)  # history.csv rows
    best: BestEpoch | None = None
    train_seconds: float = 0.0
    train_images: int = 0
    rng: dict | None = None  # RNG states at a mid-epoch checkpoint
    wall_s: float = 0.0  # the run's wall time at this checkpoint, over every process so far (a resumed run adds on)
    classes: list[str] | None = None  # what the head's outputs mean (None: a checkpoint from before it was kept)

    def end_epoch(self, stats: EpochStats, wall_s: float) -> None:
        """Epoch `self.epoch` has trained and validated: the next starts at its first step."""
        self.epoch, self.step, self.rng, self.wall_s = self.epoch + 1, 0, None, wall_s
        self.train_images += stats.images
        self.train_seconds += stats.seconds


@dataclass
class Inputs:
    """How images reach the model: in training, and in evaluation as the apps will see them."""

    data_config: dict  # timm's evaluation data config (--test-img-size, --crop-pct), saved with the model
    mode: str  # the image mode the model reads: "RGB", or "L" for one channel
    eval_transform: Callable
    eval_side: int  # evaluation decodes JPEGs straight at this shorter side, as the apps do
    caches_features: bool  # a linear probe whose head trains on the frozen backbone's cached features
    train_transform: Callable | P.DeviceAugment | FeatureCache | None  # the features, once cached; None: --epochs 0


@dataclass
class Run:
    """One run as `train` assembles it: what its epochs and its end share."""

    trainer: Trainer
    splits: D.DatasetSplits
    inputs: Inputs
    run_dir: Path
    started: float  # time.time() when this process began the run
    teachers: list[Predictor]  # --teachers, until before_first_epoch has their probabilities
    state: TrainState = field(default_factory=TrainState)
    resumed_wall_s: float = 0.0  # what the processes before this one spent, up to the checkpoint resumed from

    @property
    def cfg(self) -> TrainConfig:
        return self.trainer.cfg

    @property
    def ddp(self) -> Distributed:
        return self.trainer.ddp

    def wall_s(self) -> float:
        """The run's wall time so far, over every process that worked on it (history's and metrics' wall_s)."""
        return self.resumed_wall_s + time.time() - self.started

    def train_loader(self, epoch: int, skip_batches: int = 0) -> Iterable:
        return make_loader(self.cfg, self.splits.train, self.inputs.train_transform, self.inputs.mode, epoch,
                           self.ddp, skip_batches)

    def image_loader(self, samples: list[D.Sample]) -> Iterable:
        """Evaluation batches of these samples' images, decoded as the apps decode them."""
        return make_eval_loader(self.cfg, samples, self.inputs.eval_transform, self.inputs.mode, self.ddp,
                                self.inputs.eval_side)

    def eval_loader(self, split: str) -> Iterable:
        """`split`'s evaluation batches: its images, or a cached linear probe's features of them."""
        samples = getattr(self.splits, split)
        if self.trainer.features is not None:
            return self.trainer.features.batches(split, list(range(len(samples))), self.cfg.batch_size * 2)
        return self.image_loader(samples)

    def evaluate(self, loader: Iterable) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The evaluated model's logits, targets and dataset indices over `loader`'s whole split."""
        trainer = self.trainer
        return predict(trainer.evaluator, loader, trainer.device, trainer.opt.amp, self.ddp)


def save_state(run_dir: Path, trainer: Trainer, state: TrainState) -> None:
    opt = trainer.opt
    R.save_checkpoint(run_dir, vars(state) | {
        "best": vars(state.best) if state.best else None,
        "model": trainer.model.state_dict(), "optimizer": opt.optimizer.state_dict(),
        "scheduler": opt.scheduler.state_dict(), "ema": opt.ema.state_dict() if opt.ema else None,
        "swa": opt.swa.state_dict() if opt.swa else None,
        "config": trainer.cfg.to_dict(),
    })


def resume_from(run_dir: Path, trainer: Trainer, classes: list[str]) -> TrainState:
    """The checkpoint's state, loaded into `trainer`; a RunError when it cannot go on with this data and config."""
    try:
        checkpoint = R.load_checkpoint(run_dir)
    except Exception as err:  # a damaged pickle fails in many ways (RuntimeError, EOFError, OSError, ...)
        raise RunError(f"--resume {run_dir}: {R.CHECKPOINT}/{R.CHECKPOINT_FILE} is unreadable ({err}); it is "
                       "written atomically, so it was damaged afterwards: train the run again") from err
    if checkpoint.get("classes") not in (None, classes):
        raise RunError(f"--resume {run_dir}: it trains on the classes {checkpoint['classes']}, this data has "
                       f"{classes}; give --data-dir the run's dataset")
    if checkpoint["epoch"] > trainer.cfg.epochs:
        raise RunError(f"--resume {run_dir} --epochs {trainer.cfg.epochs}: it has trained {checkpoint['epoch']} "
                       "epochs already; give at least as many (more train on)")
    try:
        trainer.model.load_state_dict(checkpoint["model"])
    except RuntimeError as err:  # a train_config.yaml edited by hand to another model or class count
        raise RunError(f"--resume {run_dir}: its checkpoint does not fit this model ({one_line(err)}); "
                       f"{R.TRAIN_CONFIG} no longer says how the run was started") from err
    trainer.opt.optimizer.load_state_dict(checkpoint["optimizer"])
    trainer.opt.scheduler.load_state_dict(checkpoint["scheduler"])
    if trainer.opt.ema is not None and checkpoint["ema"] is not None:
        trainer.opt.ema.load_state_dict(checkpoint["ema"])
    if trainer.opt.swa is not None and checkpoint.get("swa") is not None:
        trainer.opt.swa.load_state_dict(checkpoint["swa"])
    state = TrainState(**{f.name: checkpoint[f.name] for f in fields(TrainState) if f.name in checkpoint})
    if state.best:  # a checkpoint's best epoch may carry keys BestEpoch no longer keeps (its top-1)
        state.best = BestEpoch(**{f.name: state.best[f.name] for f in fields(BestEpoch) if f.name in state.best})
    return state


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def restore_rng(rng: dict) -> None:
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])


# ------------------------------------------------------------------------------------------ finishing


@dataclass
class Evaluation:
    """The kept model's outputs on the evaluation split, in dataset order."""

    logits: torch.Tensor
    targets: torch.Tensor
    sample_ids: list[str]
    temperature: float  # fitted on the validation logits (runfolder.TEMPERATURE)
    val_top1: float  # the kept weights' validation top-1 (runfolder.VAL_TOP1), whatever the evaluation split


def final_metrics(trainer: Trainer, splits: D.DatasetSplits, data_config: dict, evaluation: Evaluation,
                  state: TrainState, wall_s: float) -> dict:
    """metrics.json: the evaluation's figures, the kept model's cost, and how the run was made (a cached linear
    probe adds what computing its features took: with --feature-cache-dir, maybe in an earlier run; --swa, how
    many cycle ends its weights average)."""
    cfg, model, features, swa = trainer.cfg, trainer.eval_model, trainer.features, trainer.opt.swa
    device = next(model.parameters()).device
    return {
        "schema": R.METRICS_SCHEMA, "dataset": cfg.dataset, "eval_split": splits.eval_split,
        "model": model.pretrained_cfg.get("architecture", cfg.model), "pretrained_tag":
            pretrained_tag(cfg.model, cfg.pretrained, cfg.weights), "strategy": cfg.strategy,
        **classification_metrics(evaluation.logits, evaluation.targets, splits.classes).as_json(),
        R.VAL_TOP1: evaluation.val_top1,
        **calibration_metrics(evaluation.logits, evaluation.targets, evaluation.temperature),
        **measure_cost(model, data_config["input_size"], device),
        "train_images_per_s": state.train_images / state.train_seconds if state.train_seconds else None,
        "epochs": state.epoch, "best_epoch": state.best.epoch if state.best else None, "kept": cfg.keep,
        "wall_s": wall_s,
        "img_size": cfg.img_size or model.pretrained_cfg["input_size"][-1],
        "test_img_size": data_config["input_size"][-1], "train_samples": len(splits.train),
        "seed": cfg.seed, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **first_stage_metrics(cfg.weights),
        **teacher_metrics(cfg.teachers, cfg.distill_weight),
        **lineage_metrics(cfg),
        **({R.FEATURE_CACHE_S: features.seconds, R.FEATURE_CACHE_READ: features.read} if features else {}),
        **({"swa_cycles": int(swa.n_averaged)} if swa is not None else {}),
        **unreadable_metrics(splits, evaluation),
        **run_environment(device),
    }


def unreadable_metrics(splits: D.DatasetSplits, evaluation: Evaluation) -> dict:
    """metrics.json `eval_unreadable`: the evaluation images --skip-corrupt left out of every figure, when any."""
    left_out = len(splits.test or splits.val) - len(evaluation.targets)
    if left_out:
        print(f"note: {left_out} unreadable evaluation image(s) left out of the metrics (--skip-corrupt)")
    return {"eval_unreadable": left_out} if left_out else {}


def lineage_metrics(cfg: TrainConfig) -> dict:
    """metrics.json `lineage`: every run this one's weights or targets came from, however far back."""
    runs = first_stages(cfg.weights) + local_teachers(cfg.teachers)
    return {R.LINEAGE: R.lineage(runs)} if runs else {}


def write_run(run_dir: Path, model: torch.nn.Module, splits: D.DatasetSplits, data_config: dict,
              evaluation: Evaluation, metrics: dict) -> None:
    """The run folder's model, predictions, metrics and model card."""
    from model_cards.card import write_card

    model.to(memory_format=torch.contiguous_format)  # safetensors refuses channels-last tensors
    R.write_model(run_dir, model, splits.classes, splits.descriptions, data_config, evaluation.temperature,
                  splits.class_ids)
    R.write_predictions(run_dir, predictions_frame(evaluation.logits, evaluation.targets, evaluation.sample_ids,
                                                   splits.classes, evaluation.temperature))
    R.write_json(run_dir / R.METRICS, metrics)
    write_card(run_dir)


def publish_and_record(cfg: TrainConfig, run_dir: Path) -> None:
    """--push-to-hub and the leaderboard store; a failed upload or record leaves the run complete and exits 1."""
    hub_repo = None
    if cfg.push_to_hub:
        from model_cards.publish import PublishError, publish_run

        try:
            print(f"published: {publish_run(run_dir, cfg.push_to_hub, private=cfg.private)}")
            hub_repo = cfg.push_to_hub
        except PublishError as err:  # the message says how to retry
            print(f"error: {err}", file=sys.stderr)
    recorded = not cfg.record or record_in_store(cfg, run_dir, hub_repo)
    if (cfg.push_to_hub and hub_repo is None) or not recorded:
        raise SystemExit(1)


def record_in_store(cfg: TrainConfig, run_dir: Path, hub_repo: str | None) -> bool:
    """Record the finished run in the leaderboard store; an unusable store is reported, the run folder stays."""
    from leaderboard.store import Store, StoreError, default_db_path

    db = Path(cfg.db) if cfg.db else default_db_path()
    try:
        Store(db).record_run(run_dir, hub_repo=hub_repo)
    except StoreError as err:
        print(f"error: {err}; the run folder is complete: record it later with "
              f"python -m leaderboard ingest {run_dir} --db PATH", file=sys.stderr)
        return False
    print(f"recorded in the leaderboard store {db}")
    return True



def cli() -> None:
    """The `arena-finetune` console script: `main` without its return value (which would become the exit status)."""
    main()


if __name__ == "__main__":
    cli()
