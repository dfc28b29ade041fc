"""Shared pieces of the benchmarks: hardware description, tables and CSV output, timing, real data subsets.

The benchmarks import the product (`trainers.*`), installed with `pip install -e .` (as `make` does); on a
machine where nothing can be installed, run them with `PYTHONPATH=.` from the repository root.
"""

from __future__ import annotations

import csv
import os
import platform
import subprocess
import tarfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from archives import ARCHIVES, SHARED_DATA

from trainers.inference import is_image_file

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
os.environ.setdefault("TQDM_DISABLE", "1")  # the trainer's progress bar is not part of what is measured
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def hardware(device: torch.device) -> str:
    """'AMD EPYC (2 cores, 2 torch threads)' or the GPU's name: what the figures were measured on."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    return f"{model} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def load_average() -> str:
    """The 1-minute load average: other processes slow every figure, so every table says how busy the CPU was."""
    return f"{os.getloadavg()[0]:.1f}"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds one call of `fn` takes, with the device's queue drained on both sides."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def ratio_summary(numerators: list[float], denominators: list[float]) -> dict[str, float | str]:
    """Median of the per-round ratios (each round's two sides ran back to back) and their range: on a busy
    CPU the load drifts between rounds, and the range shows how much."""
    ratios = [a / b for a, b in zip(numerators, denominators, strict=True)]
    return {"ratio": float(np.median(ratios)), "ratio_range": f"{min(ratios):.2f}-{max(ratios):.2f}"}


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def report(name: str, rows: list[dict], header: str, out: Path = OUT) -> Path:
    """Print `rows` as a table under `header` and write them to `out`/<name>.csv (atomically: a run cut short
    leaves the previous table, never half of one)."""
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    rows = [{**row, "date": stamp} for row in rows]
    columns = list(dict.fromkeys(c for row in rows for c in row))  # rows may differ (a failed run has fewer)
    cells = [[_fmt(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print(f"\n{header}")
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.csv"
    with open(path.with_suffix(".csv.tmp"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(path.with_suffix(".csv.tmp"), path)
    print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return path


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return "" if value is None else str(value)



def unpack_subset(dataset: str, dest: Path, images: int, source: Path = SHARED_DATA) -> Path:
    """Unpack about `images` images of a real dataset (see `unpack_archive`) from the archive in `source`;
    returns the root to pass as --data-dir."""
    archive, root = ARCHIVES[dataset]
    unpack_archive(source / archive, dest, images)
    return dest / root


def unpack_archive(path: Path, dest: Path, images: int | None = None) -> None:
    """Unpack the archive at `path` into `dest`: every image (`images` None), or about `images` of them (the same
    number from every class folder, at least 3 so a validation split can be carved), plus its metadata files."""
    if not path.is_file():
        raise SystemExit(f"error: real data archive {path} not found (set ARENA_SHARED_DATA)")
    with tarfile.open(path) as tar:
        if images is None:
            tar.extractall(dest, filter="data")
            return
        chosen: list[tarfile.TarInfo] = []
        by_folder: dict[str, list[tarfile.TarInfo]] = defaultdict(list)
        for m in (m for m in tar.getmembers() if m.isfile()):
            if is_image_file(m.name):
                by_folder[str(Path(m.name).parent)].append(m)
            else:
                chosen.append(m)
        per_folder = max(3, images // len(by_folder))
        chosen += [m for folder in by_folder.values() for m in folder[:per_folder]]
        tar.extractall(dest, members=chosen, filter="data")
