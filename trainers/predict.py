"""Batch prediction from the command line, through the same Predictor as the Gradio app and the evaluator.

    python -m trainers.predict MODEL INPUT... [--topk 5] [--out FILE.csv|.parquet|.jsonl] [--batch-size 32]
                               [--device cpu|cuda] [--backend torch|onnx] [--no-calibration] [--resume]

MODEL is a run folder or `hf-hub:<org>/<name>`. INPUT is image files, directories (searched recursively for
image files) or .txt files listing one path per line (relative paths are relative to the current directory).
Output: one row per input, in input order: `path`, `label_1`, `prob_1`, ... `label_k`, `prob_k`, `error`
(empty, or why the image could not be read). Without --out the rows go to stdout as CSV. Probabilities are
calibrated with the run's fitted softmax temperature (config.json); --no-calibration gives the raw softmax.

Interruption: finished rows are appended batch by batch to `FILE.partial` (JSON lines) and the output is
written atomically at the end, so `--resume` after a crash or Ctrl-C predicts only what is missing. Resume
skips images with a row and no error; rows with an error are tried again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from runfolder import atomic_path
from trainers.inference import BACKENDS, Prediction, Predictor, images_in
from trainers.models import one_line

OUT_FORMATS = (".csv", ".parquet", ".jsonl")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m trainers.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="run folder or hf-hub:<org>/<name>")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, directories or .txt path lists")
    parser.add_argument("--topk", type=int, default=5, help="labels and probabilities per image")
    parser.add_argument("--out", type=Path, help=f"output file ({', '.join(OUT_FORMATS)}); default: CSV to stdout")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available (torch backend)")
    parser.add_argument("--backend", choices=BACKENDS, default="torch",
                        help="onnx: the run's model.onnx (python -m trainers.export) on onnxruntime")
    parser.add_argument("--no-calibration", dest="calibrated", action="store_false",
                        help="raw softmax probabilities, without the run's fitted temperature")
    parser.add_argument("--resume", action="store_true", help="skip images already predicted in --out")
    args = parser.parse_args(argv)
    if args.out is not None and args.out.suffix not in OUT_FORMATS:
        parser.error(f"--out must end in one of {', '.join(OUT_FORMATS)}")
    if args.resume and args.out is None:
        parser.error("--resume needs --out (the file to resume)")
    if args.topk < 1 or args.batch_size < 1:
        parser.error("--topk and --batch-size must be at least 1")
    return args


def expand_inputs(inputs: list[str | Path]) -> list[str]:
    """Image paths in the order given: files as written (so a missing one becomes an error row), image
    files under directories (recursively, sorted), and the lines of .txt lists (blank and # lines skipped)."""
    paths: list[str] = []
    for item in map(Path, inputs):
        if item.is_dir():
            paths += map(str, images_in(item))
        elif item.suffix == ".txt" and item.is_file():
            lines = (line.strip() for line in item.read_text().splitlines())
            paths += [line for line in lines if line and not line.startswith("#")]
        else:
            paths.append(str(item))
    return paths


def columns(k: int) -> list[str]:
    return ["path", *(f"{name}_{rank}" for rank in range(1, k + 1) for name in ("label", "prob")), "error"]


def prediction_rows(paths: list[str], prediction: Prediction, k: int) -> list[dict]:
    rows = []
    for i, path in enumerate(paths):
        row: dict = {"path": path}
        top = [] if i in prediction.errors else prediction.topk(i, k)
        for rank in range(k):
            row[f"label_{rank + 1}"], row[f"prob_{rank + 1}"] = top[rank] if top else (None, None)
        row["error"] = prediction.errors.get(i)
        rows.append(row)
    return rows


def read_rows(path: Path) -> list[dict]:
    """Rows of an earlier output, with labels and paths kept as text (a label "3" must stay a string)."""
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif path.suffix == ".csv":
        header = pd.read_csv(path, nrows=0).columns
        frame = pd.read_csv(path, dtype={c: str for c in header if not c.startswith("prob_")})
    else:
        frame = pd.read_json(path, lines=True, dtype=False)
    frame = frame.astype(object).where(frame.notna(), None)  # NaN -> None, as freshly predicted rows have
    return frame.to_dict("records")


def write_rows(path: Path | None, rows: list[dict], k: int) -> None:
    frame = pd.DataFrame(rows, columns=columns(k))
    if path is None:
        frame.to_csv(sys.stdout, index=False)
        return
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        elif path.suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_json(tmp, orient="records", lines=True)


class Journal:
    """Finished rows appended as JSON lines beside the output, flushed per batch: what --resume reads after
    an interruption. A line cut short by a kill is ignored (its images are simply predicted again)."""

    def __init__(self, out: Path):
        self.path = out.with_name(out.name + ".partial")

    def read(self) -> list[dict]:
        if not self.path.is_file():
            return []
        rows = []
        for line in self.path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return rows

    def append(self, rows: list[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write("".join(json.dumps(row) + "\n" for row in rows))

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def finished_rows(out: Path, journal: Journal, k: int, labels: list[str]) -> dict[str, dict]:
    """path -> row for images predicted without error by an earlier run (its output and its journal), which must
    have had the columns of `k` and a model of these `labels`."""
    try:
        rows = read_rows(out) if out.is_file() else []
    except (ValueError, OSError) as err:  # pandas' and pyarrow's parse errors (ArrowInvalid is a ValueError)
        raise SystemExit(f"error: --resume: {out} cannot be read as {out.suffix} ({one_line(err)}): it is "
                         "not an intact output of this command; write a new --out, or move it aside") from None
    rows += journal.read()
    expected = set(columns(k))
    for row in rows:
        if set(row) != expected:
            raise SystemExit(f"error: {out} has columns {sorted(row)}, not those of --topk {k}; "
                             "resume with the --topk it was written with, or write a new --out")
    if foreign := sorted({str(row["label_1"]) for row in rows if not row["error"]} - set(labels)):
        raise SystemExit(f"error: --resume: {out} holds labels this model does not have ({', '.join(foreign[:5])}): "
                         "another model wrote it; resume with that one, or write a new --out")
    return {row["path"]: row for row in rows if not row["error"]}


def batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    paths = expand_inputs(args.inputs)
    if not paths:
        raise SystemExit(f"error: no images found in {' '.join(args.inputs)}")
    device = args.device or ("cuda" if torch.cuda.is_available() and args.backend == "torch" else "cpu")
    if device == "cuda" and args.backend == "torch" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda: PyTorch sees no CUDA device")
    try:
        predictor = Predictor.from_run(args.model, device, backend=args.backend, calibrated=args.calibrated)
    except Exception as err:  # a damaged run folder fails in many ways (safetensors, JSON, timm's loader, torch)
        raise SystemExit(f"error: cannot load {args.model}: {one_line(err)}") from None
    k = min(args.topk, len(predictor.labels))
    journal = Journal(args.out) if args.out else None
    done = finished_rows(args.out, journal, k, predictor.labels) if args.resume else {}
    if journal and not args.resume:
        journal.remove()  # a fresh run must not inherit rows of an abandoned one
    todo = [p for p in dict.fromkeys(paths) if p not in done]
    if done:
        print(f"resume: {len(paths) - len(todo)} of {len(paths)} images already predicted", file=sys.stderr)

    start, errors = time.perf_counter(), 0
    bar = tqdm(total=len(todo), unit="img", desc="predict", file=sys.stderr)
    try:
        for chunk in batches(todo, args.batch_size):
            rows = prediction_rows(chunk, predictor.predict(chunk), k)
            if journal:
                journal.append(rows)
            done.update((row["path"], row) for row in rows)
            errors += sum(row["error"] is not None for row in rows)
            bar.update(len(chunk))
    except KeyboardInterrupt:
        kept = f"; {len(done)} finished rows kept in {journal.path}, rerun with --resume" if journal else ""
        raise SystemExit(f"interrupted{kept}") from None
    finally:
        bar.close()
    seconds = time.perf_counter() - start

    rows = [done[p] for p in paths]
    write_rows(args.out, rows, k)
    if journal:
        journal.remove()
    rate = len(todo) / seconds if seconds > 0 else 0.0
    print(f"{len(todo)} images in {seconds:.1f} s ({rate:.1f} images/s, {predictor.backend} on {device}), "
          f"{errors} unreadable; softmax temperature {predictor.temperature:.3g}"
          + (f"; wrote {args.out}" if args.out else ""), file=sys.stderr)
    if all(row["error"] for row in rows):  # a script must not take a file of only errors for predictions
        raise SystemExit(f"error: none of the {len(rows)} input(s) could be read; the error column says why")
    return rows



def cli() -> None:
    """The `arena-predict` console script: `main` without its return value (which would become the exit status)."""
    main()


if __name__ == "__main__":
    cli()
