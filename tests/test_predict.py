"""Batch prediction (`python -m trainers.predict`) on real images, through the Predictor the app uses.

The three consumers of the inference path - the trainer's evaluator (predictions.parquet), this CLI and the
Gradio app's Predictor - must give the same top-1 on every image.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SAMPLE, evaluated_images

from runfolder import CALIBRATED_CONFIDENCE, PREDICTIONS
from trainers import predict
from trainers.inference import Predictor

REAL = sorted((SAMPLE / "val").rglob("*.jpg"))  # real CIFAR-10 images shipped in the repo


def run_cli(run: Path, *args: str | Path) -> list[dict]:
    return predict.main([str(run), *map(str, args)])


@pytest.fixture
def image_dir(tmp_path) -> Path:
    """Real images in nested folders, a truncated JPEG, a text file named .jpg, and a non-image file."""
    root = tmp_path / "images"
    for i, source in enumerate(REAL[:12]):
        target = root / ("b" if i % 2 else "a") / f"{i:02d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    (root / "a" / "05_truncated.jpg").write_bytes(REAL[0].read_bytes()[:300])
    (root / "b" / "not_an_image.jpg").write_text("this is text")
    (root / "notes.csv").write_text("not an image extension: ignored in directories\n")
    return root


def test_directory_with_corrupt_files_gives_error_rows_in_input_order(tiny_run, image_dir, tmp_path):
    listed = tmp_path / "list.txt"
    listed.write_text(f"# chosen images\n{REAL[20]}\n\n{REAL[21]}\n")
    missing = tmp_path / "missing.jpg"
    out = tmp_path / "out.csv"
    rows = run_cli(tiny_run, listed, image_dir, missing, "--out", out, "--topk", "3", "--batch-size", "4")

    in_dir = sorted(str(p) for p in image_dir.rglob("*.jpg"))
    assert [r["path"] for r in rows] == [str(REAL[20]), str(REAL[21]), *in_dir, str(missing)]
    frame = pd.read_csv(out, dtype={"error": str})
    assert list(frame.columns) == ["path", "label_1", "prob_1", "label_2", "prob_2", "label_3", "prob_3", "error"]
    assert frame["path"].tolist() == [r["path"] for r in rows]
    failed = frame[frame["error"].notna()]
    assert sorted(Path(p).name for p in failed["path"]) == ["05_truncated.jpg", "missing.jpg", "not_an_image.jpg"]
    for path, error in zip(failed["path"], failed["error"], strict=True):
        assert path in error and failed.loc[failed["path"] == path, "label_1"].isna().all()

    good = frame[frame["error"].isna()]
    assert len(good) == 14
    probs = good[["prob_1", "prob_2", "prob_3"]].to_numpy()
    assert (np.diff(probs, axis=1) <= 0).all() and (probs > 0).all() and (probs.sum(axis=1) <= 1 + 1e-6).all()
    # The same images through the app's Predictor give the same labels and probabilities.
    direct = Predictor.from_run(tiny_run).predict(good["path"].tolist())
    for i, row in enumerate(good.itertuples()):
        (l1, p1), (l2, p2), (l3, p3) = direct.topk(i, 3)
        assert (row.label_1, row.label_2, row.label_3) == (l1, l2, l3)
        assert np.allclose([row.prob_1, row.prob_2, row.prob_3], [p1, p2, p3], atol=1e-6)


def test_stdout_csv_when_no_out_file(tiny_run, capsys):
    run_cli(tiny_run, REAL[0], "--topk", "2")
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == "path,label_1,prob_1,label_2,prob_2,error"
    assert captured.out.splitlines()[1].startswith(f"{REAL[0]},")
    assert "images/s" in captured.err


class Interrupt:
    """Predictor.predict that raises KeyboardInterrupt on call number `at` and counts the images it saw."""

    def __init__(self, monkeypatch, at: int | None = None):
        self.calls, self.seen, self.at = 0, [], at
        original = Predictor.predict

        def predict_(predictor, sources):
            self.calls += 1
            if self.calls == self.at:
                raise KeyboardInterrupt
            self.seen += sources
            return original(predictor, sources)

        monkeypatch.setattr(Predictor, "predict", predict_)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_interrupted_run_resumes_where_it_stopped(tiny_run, image_dir, tmp_path, monkeypatch, suffix):
    out = tmp_path / f"out{suffix}"
    args = (image_dir, "--out", out, "--batch-size", "4")
    reference = run_cli(tiny_run, image_dir, "--out", tmp_path / f"reference{suffix}", "--batch-size", "4")

    Interrupt(monkeypatch, at=3)
    with pytest.raises(SystemExit, match="interrupted; 8 finished rows kept in .*--resume"):
        run_cli(tiny_run, *args)
    assert not out.exists() and out.with_name(out.name + ".partial").is_file()

    counter = Interrupt(monkeypatch)
    resumed = run_cli(tiny_run, *args, "--resume")
    # Predicted again: the images of the unfinished batches, and the finished ones that had an error.
    retried = [r["path"] for r in reference[:8] if r["error"]]
    assert retried and counter.seen == retried + [r["path"] for r in reference[8:]]
    assert not out.with_name(out.name + ".partial").exists()
    assert_same_rows(resumed, reference)
    assert_same_rows(predict.read_rows(out), reference)


def test_resume_skips_finished_rows_and_retries_errors(tiny_run, image_dir, tmp_path, monkeypatch):
    out = tmp_path / "out.parquet"
    run_cli(tiny_run, image_dir, "--out", out)
    added = image_dir / "c" / "new.jpg"
    added.parent.mkdir()
    shutil.copy(REAL[30], added)

    counter = Interrupt(monkeypatch)
    rows = run_cli(tiny_run, image_dir, "--out", out, "--resume")
    errors = {r["path"] for r in rows if r["error"]}
    assert sorted(counter.seen) == sorted([str(added), *errors])  # the new image, and the failed ones again
    assert [r["path"] for r in rows] == sorted(str(p) for p in image_dir.rglob("*.jpg"))

    with pytest.raises(SystemExit, match="--topk"):
        run_cli(tiny_run, image_dir, "--out", out, "--resume", "--topk", "2")
    faces = Path(__file__).parents[1] / "reference" / "fer2013-mini_xception"  # 7 expressions, not CIFAR-10's
    with pytest.raises(SystemExit, match="--resume: .* holds labels this model does not have .*another model"):
        run_cli(faces, image_dir, "--out", out, "--resume")


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_resume_names_an_output_it_cannot_read_and_keeps_it(tiny_run, image_dir, tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    out.write_text('{"path": "a.jpg", "label_1": "cat", "prob_1')  # cut short, or another program's file
    with pytest.raises(SystemExit, match=f"--resume: {out} cannot be read as {suffix} .*write a new --out"):
        run_cli(tiny_run, image_dir, "--out", out, "--resume")
    assert out.read_text() == '{"path": "a.jpg", "label_1": "cat", "prob_1'


def test_three_code_paths_agree_on_every_image(tiny_run, tmp_path):
    """Evaluator (predictions.parquet) == predict CLI == Predictor (Gradio app), image by image: the raw softmax
    with --no-calibration, the calibrated top-1 by default."""
    evaluated = pd.read_parquet(tiny_run / PREDICTIONS)
    listed = tmp_path / "eval.txt"
    images = evaluated_images(tiny_run)
    listed.write_text("\n".join(images) + "\n")
    cli = run_cli(tiny_run, listed, "--topk", "5", "--no-calibration")
    app = Predictor.from_run(tiny_run).predict(images)

    assert [r["path"] for r in cli] == images
    assert [r["label_1"] for r in cli] == evaluated["pred_label"].tolist()
    assert [app.labels[i] for i in app.probs.argmax(1)] == evaluated["pred_label"].tolist()
    for row, expected in zip(cli, evaluated["topk_probs"], strict=True):
        assert np.allclose([row[f"prob_{k}"] for k in range(1, 6)], expected, atol=1e-5)
    assert np.allclose(app.probs.max(1), evaluated[CALIBRATED_CONFIDENCE], atol=1e-5)


def test_bad_arguments_are_refused(tiny_run, tmp_path):
    with pytest.raises(SystemExit):
        run_cli(tiny_run, REAL[0], "--out", tmp_path / "out.xlsx")
    with pytest.raises(SystemExit):
        run_cli(tiny_run, REAL[0], "--resume")
    with pytest.raises(SystemExit, match="no images found"):
        run_cli(tiny_run, tmp_path)
    with pytest.raises(SystemExit, match="cannot load"):
        run_cli(tmp_path / "no-such-run", REAL[0])
    damaged = Path(shutil.copytree(tiny_run, tmp_path / "damaged", ignore=shutil.ignore_patterns("checkpoint")))
    (damaged / "model.safetensors").write_bytes((damaged / "model.safetensors").read_bytes()[:100])
    with pytest.raises(SystemExit, match=f"cannot load {damaged}: SafetensorError: "):
        run_cli(damaged, REAL[0])
    (tmp_path / "notes.png").write_text("no image\n")  # an image's name, not an image
    out = tmp_path / "all-failed.csv"
    with pytest.raises(SystemExit, match="none of the 2 input.s. could be read; the error column says why"):
        run_cli(tiny_run, tmp_path / "missing.png", tmp_path / "notes.png", "--out", out)
    assert pd.read_csv(out)["error"].notna().all()  # the rows that say why are still written


def assert_same_rows(got: list[dict], expected: list[dict]) -> None:
    assert [r["path"] for r in got] == [r["path"] for r in expected]
    for a, b in zip(got, expected, strict=True):
        assert a["error"] == b["error"] and a["label_1"] == b["label_1"]
        if a["error"] is None:
            assert np.isclose(a["prob_1"], b["prob_1"], atol=1e-6)
