"""benchmarks/gpu_run.py: the transfer plan splits and reassembles files exactly and stays within a transfer's
limit; `--smoke` runs every stage end to end on the CPU and leaves every table and pack in the output folder."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tarfile

import pandas as pd
import pytest
from conftest import REPO, shared_archive
from safetensors import safe_open

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_run  # noqa: E402

import runfolder as R  # noqa: E402


def test_transfers_split_files_within_room_and_reassemble_them(tmp_path):
    sources = tmp_path / "src"
    sources.mkdir()
    files = {f"data/{n}": sources / n for n in ("a.bin", "b.bin")}
    files["data/a.bin"].write_bytes(bytes(range(256)) * 40)  # 10,240 bytes: spans three transfers of 4,000
    files["data/b.bin"].write_bytes(b"xyz" * 1000)
    transfers = gpu_run.prepare(files, tmp_path / "dd", room=4000)
    assert [t.size for t in transfers] == [4000, 4000, 4000, 1240]
    assert all(sum(p.stat().st_size for p in (tmp_path / "dd" / f"t{k}").glob("*.part")) <= 4000
               for k in range(1, 5))
    assert gpu_run.assemble(tmp_path / "dd", tmp_path / "work") == set(files)
    for dest, source in files.items():
        assert (tmp_path / "work" / dest).read_bytes() == source.read_bytes()
    # A transfer that did not arrive: its files are reported incomplete, the others still assemble.
    (tmp_path / "dd" / "t4" / "00.part").unlink()
    assert gpu_run.assemble(tmp_path / "dd", tmp_path / "work2") == {"data/a.bin"}
    largest = gpu_run.working_tree_bytes()[0] + max(gpu_run.folder_bytes(t) for t in (tmp_path / "dd").glob("t*"))
    assert gpu_run.dry_run(tmp_path / "dd", limit=largest)
    assert not gpu_run.dry_run(tmp_path / "dd", limit=largest - 1)


def gpu_script(*args) -> subprocess.CompletedProcess:
    """benchmarks/gpu_run.py as documented (PYTHONPATH=.: it packs with reference/); fails the test if it fails."""
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_run.py"), *map(str, args)],
                            capture_output=True, text=True, timeout=900, cwd=REPO, env=os.environ | {"PYTHONPATH": "."})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_smoke_runs_every_stage_and_returns_tables_and_packs(tmp_path):
    for name in gpu_run.ARCHIVES:
        shared_archive(name)
    out = tmp_path / "out"
    result = gpu_script("--smoke", "--out", out, "--work", tmp_path / "work", "--data", tmp_path / "dd")
    assert "FAILED" not in result.stdout
    assert f"Lite0 weights read from {tmp_path / 'work' / 'site'}" in result.stdout  # the travelled copy
    assert "all within the limits" in result.stdout
    for table in gpu_run.TABLES:
        assert (out / f"{table}.csv").is_file()
    with open(out / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    tasks = [gpu_run.CIFAR10, *gpu_run.REFERENCES, *gpu_run.SCRATCH]
    assert [r["run"] for r in rows] == [t.name for t in tasks]
    assert all(r["status"] == "ok" for r in rows), [r["status"] for r in rows]
    packs = sorted(out.glob("*.tar"))
    assert [p.stem for p in packs] == sorted(t.name for t in [gpu_run.CIFAR10, *gpu_run.REFERENCES])
    assert len(list(out.iterdir())) <= gpu_run.RETURN_FILES
    with tarfile.open(packs[0]) as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "unpacked", filter="data")
    run = tmp_path / "unpacked" / packs[0].stem
    assert not any(f"/{R.CHECKPOINT}" in n for n in names)
    assert R.read_metrics(run)["hardware"]
    with safe_open(str(run / R.WEIGHTS), "pt") as weights:
        dtypes = {str(weights.get_slice(k).get_dtype()) for k in weights.keys()}  # noqa: SIM118 (not a dict)
    assert "F16" in dtypes and "F32" not in dtypes
    sample_ids = pd.read_parquet(run / R.PREDICTIONS).sample_id
    assert not any(s.startswith("/") for s in sample_ids)
    # The preflight the first transfer runs (here on the CPU): one toy run trained, written and packed.
    preflight = gpu_script("--preflight", "--out", tmp_path / "preflight", "--data", tmp_path / "dd")
    assert "preflight ok on cpu" in preflight.stdout
    assert (tmp_path / "preflight" / f"{gpu_run.CIFAR10.name}.tar").is_file()


def test_a_failed_runs_row_keeps_what_its_history_holds(tmp_path):
    """A run that trained but failed at its last step (a write, a pack) still reports its epochs in runs.csv."""
    from fixtures_runs import make_run

    run = make_run(tmp_path, "cifar10-efficientnet_lite0", dataset="cifar10")
    history = R.read_history(run)
    figures = gpu_run.history_figures(run)
    assert figures["epochs_done"] == len(history)
    assert figures["best_val_top1"] == history.val_acc.max()
    assert figures["wall_s"] == history.wall_s.iloc[-1]
    assert gpu_run.history_figures(tmp_path / "never-started") == {}
