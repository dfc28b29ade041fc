"""The end-of-run summary as a user reads it in a log file or a pipe."""

from __future__ import annotations

from runfolder.metrics import METRIC_SPECS
from trainers.report import print_summary

METRICS = {"model": "tf_efficientnet_lite0", "dataset": "cifar10", "eval_split": "val", "top1": 0.9, "macro_f1": 0.9,
           "ece": 0.02, "params": 3.4e6, "macs": 0.4e9, "train_images_per_s": 50.0, "latency_ms": 12.0,
           "epochs": 2, "best_epoch": 2, "wall_s": 60.0}


def test_run_folder_path_is_printed_unwrapped_on_its_own_line(tmp_path, capsys):
    run_dir = tmp_path / ("a-run-name-long-enough-to-pass-the-eighty-column-width-of-a-non-terminal-" * 2)
    run_dir.mkdir()
    print_summary(run_dir, METRICS)
    out = capsys.readouterr().out
    assert len(str(run_dir.resolve())) > 120
    assert str(run_dir.resolve()) in out.splitlines()
    assert METRIC_SPECS["top1"].label in out and METRIC_SPECS["top1"].text(0.9) in out
