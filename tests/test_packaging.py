"""The installed project (`pip install -e .`, as `make` sets it up): every console script answers --help, the
documented script paths keep working, and the Space's entry point starts the Gradio app's CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCRIPTS = {  # console script -> a word its --help prints
    "arena-finetune": "--dataset",
    "arena-predict": "--out",
    "arena-export": "--opset",
    "arena-soup": "--data-dir",
    "arena-app": "--analytics",
    "arena-leaderboard": "compare",
    "arena-dashboard": "Usage",
}


def run(*command: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("script", SCRIPTS)
def test_console_script_answers_help(script, tmp_path):
    path = BIN / script
    assert path.is_file(), f"{path} missing: install the project with `pip install -e .` (make does)"
    result = run(str(path), "--help", cwd=tmp_path)  # from anywhere, not only the checkout
    assert result.returncode == 0, result.stderr[-2000:]
    assert SCRIPTS[script] in result.stdout


def test_finetune_help_shows_every_default():
    result = run(str(BIN / "arena-finetune"), "--help")
    assert result.returncode == 0 and "(default: efficientnet_lite0)" in " ".join(result.stdout.split())  # unwrapped


@pytest.mark.parametrize("script", ["trainers/finetune.py", "app.py"])
def test_documented_script_paths_still_run(script):
    result = run(sys.executable, script, "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout
