"""What a run costs and where it ran: parameters, MACs, latency, hardware, versions; the end-of-run summary."""

from __future__ import annotations

import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from runfolder import TEMPERATURE
from runfolder.metrics import METRIC_SPECS
from trainers.config import REPO_ROOT


@torch.inference_mode()
def measure_cost(model: torch.nn.Module, input_size: tuple[int, ...], device: torch.device, runs: int = 10) -> dict:
    """Parameters, MACs (torch's FLOP counter / 2) and batch-1 latency (median of `runs`) in eval mode."""
    was_training = model.training
    model.eval()
    x = torch.randn(1, *input_size, device=device)
    counter = FlopCounterMode(display=False)
    with counter:
        model(x)
    timings = []
    for _ in range(runs + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        timings.append((time.perf_counter() - start) * 1000)
    model.train(was_training)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "macs": counter.get_total_flops() // 2,
        "latency_ms": statistics.median(timings[2:]),
        "latency_device": device.type,
    }


def cpu_name() -> str:
    """The CPU's model name ("AMD EPYC"), from /proc/cpuinfo where there is one."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "CPU"


def run_environment(device: torch.device) -> dict:
    import timm

    threads = torch.get_num_threads()
    cpu = f"{cpu_name()} CPU ({platform.machine()}, {threads} thread{'s' if threads > 1 else ''})"
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu
    return {
        "hardware": hardware,
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "timm": timm.__version__},
        "git_rev": git_revision(),
    }


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


SUMMARY_METRICS = ("top1", "top5", "macro_f1", "auroc", "sensitivity", "specificity", "ece", "ece_calibrated",
                   TEMPERATURE, "params", "macs",
                   "train_images_per_s", "latency_ms", "epochs", "best_epoch", "wall_s")  # fmt: skip


def print_summary(run_dir: Path, metrics: dict) -> None:
    """One screen at the end of a run: the headline figures and where the run folder is."""
    title = f"{metrics['model']} on {metrics['dataset']} ({metrics['eval_split']} split)"
    table = Table(title=title, min_width=len(title))  # a title wider than the figures stays on one line
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in SUMMARY_METRICS:
        spec = METRIC_SPECS[key]
        if metrics.get(key) is not None:
            table.add_row(spec.label, spec.text(metrics[key]))
    console = Console()
    console.print(table)
    console.print("run folder:")
    # Unwrapped on its own line, so a log file or pipe (where rich wraps at 80 columns) keeps it copyable.
    console.print(str(run_dir.resolve()), soft_wrap=True, markup=False, highlight=False)
