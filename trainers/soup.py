"""Greedy model soups: the average of the runs that help, chosen on their shared validation images.

    python -m trainers.soup RUN RUN [RUN ...] --data-dir DIR [--output runs] [--name NAME] [--no-record]

The runs must be fine-tunings of one architecture from the same pretrained start, evaluated on the same images (the
same dataset and carve: --split-seed, else --seed), e.g. one recipe trained with other augmentations, learning rates
or seeds. Greedy soup (Wortsman et al., 2022, Algorithm 1): the runs are ranked by their own validation top-1
(`runfolder.validation_top1`: never a test split's); the soup starts as the best one, and each next run joins when
the average with it scores at least as well on validation.
Every candidate is evaluated by `finetune.py --weights A,B,... --epochs 0`, the same code that finishes a training
run, and the kept soup is written as a run folder (`metrics.json` `soup_of` names its ingredients). The uniform soup
of runs you choose yourself is that command alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

import runfolder as R
from trainers.config import TrainConfig, load_yaml
from trainers.finetune import USER_ERRORS, publish_and_record, train
from trainers.models import SOUP_SEPARATOR


class SoupError(ValueError):
    """Runs that cannot be averaged into one network, with the reason."""


@dataclass(frozen=True)
class Ingredient:
    run: Path
    top1: float


@dataclass(frozen=True)
class Step:
    """One greedy step: the run tried, the soup's validation top-1 with it, and whether it stayed."""

    run: str
    top1: float
    kept: bool


def ingredients(runs: list[Path]) -> list[Ingredient]:
    """The runs, best validation top-1 first, after checking that they can be averaged and compared."""
    if len(runs) < 2:
        raise SoupError("a soup needs at least two runs")
    for run in runs:
        if not R.is_run(run):
            raise SoupError(f"{run} is not a run folder (no {R.METRICS})")
    metrics = {run: R.read_metrics(run) for run in runs}  # each file read once
    first, first_ids = runs[0], set(sample_ids(runs[0]))
    for run in runs[1:]:
        for key in ("dataset", "model", "num_classes", "eval_split"):
            if metrics[run][key] != metrics[first][key]:
                raise SoupError(f"{run.name} and {first.name} differ in {key}: "
                                f"{metrics[run][key]!r} against {metrics[first][key]!r}")
        if set(sample_ids(run)) != first_ids:
            raise SoupError(f"{run.name} and {first.name} were evaluated on different images: a greedy soup "
                            "compares its candidates on the images all of its runs share (the same carve: "
                            "--split-seed, else --seed)")
    return sorted((Ingredient(run, validation_score(run, metrics[run])) for run in runs), key=lambda i: -i.top1)


def validation_score(run: Path, metrics: dict) -> float:
    if (top1 := R.validation_top1(metrics)) is None:
        raise SoupError(f"{run.name} was evaluated on its test split and records no validation top-1 (written before "
                        f"{R.VAL_TOP1}): train it again, or give the soup runs evaluated on validation")
    return top1


def sample_ids(run: Path) -> list[str]:
    return pd.read_parquet(run / R.PREDICTIONS, columns=["sample_id"]).sample_id.tolist()


def soup_config(base: Path, data_dir: str | None, members: list[Path], output: Path, name: str) -> TrainConfig:
    """The first run's configuration, evaluating the average of `members` (`--epochs 0`) into output/name."""
    values = load_yaml(base / R.TRAIN_CONFIG) | {"data_dir": data_dir or R.read_train_config(base).get("data_dir")}
    return dataclasses.replace(
        TrainConfig(**values), weights=SOUP_SEPARATOR.join(str(run.resolve()) for run in members), epochs=0,
        output=str(output), name=name, resume=None, seeds=1, record=False, push_to_hub=None)


def greedy_soup(runs: list[Path], data_dir: str | None, output: Path, name: str) -> tuple[Path, list[Step]]:
    """Greedy soup of `runs`, written to output/name; returns it and the steps that chose it."""
    ranked = ingredients(runs)
    if (output / name).exists():
        raise SoupError(f"{output / name} exists: choose another --name")
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".soup-", dir=output) as staging:
        folders = (Path(staging) / str(number) for number in itertools.count())

        def evaluate(members: list[Path]) -> Path:  # each candidate in its own folder, all named as the soup
            return train(soup_config(ranked[0].run, data_dir, members, next(folders), name))

        members, steps = [ranked[0].run], []
        kept = evaluate(members)  # the best run alone, re-evaluated by the same code as every candidate
        best = R.read_metrics(kept)[R.VAL_TOP1]
        for candidate in ranked[1:]:
            run_dir = evaluate([*members, candidate.run])
            top1 = R.read_metrics(run_dir)[R.VAL_TOP1]
            steps.append(Step(candidate.run.name, top1, top1 >= best))
            if top1 >= best:
                members, best, kept = [*members, candidate.run], top1, run_dir
        if len(members) == 1:
            raise SoupError(f"no soup scored as well as {ranked[0].run.name} alone ({best:.1%}); nothing written")
        kept.rename(output / name)
    final = output / name
    R.write_train_config(final, R.read_train_config(final) | {"output": str(output)})
    return final, steps


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m trainers.soup", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders fine-tuned from the same start")
    parser.add_argument("--data-dir", help="their dataset on this machine (default: the data_dir of the run with the "
                        "best validation top-1)")
    parser.add_argument("--output", type=Path, default=Path(TrainConfig.output), help="where the soup's run "
                        "folder goes (default: %(default)s)")
    parser.add_argument("--name", default=None, help="the soup's run folder name (default: <first run>-soup)")
    parser.add_argument("--record", action=argparse.BooleanOptionalAction, default=True,
                        help="record the soup in the leaderboard store (default: yes)")
    parser.add_argument("--db", help="leaderboard store path (default: $ARENA_DB or the user cache)")
    args = parser.parse_args(argv)
    try:
        final, steps = greedy_soup(args.runs, args.data_dir, args.output, args.name or f"{args.runs[0].name}-soup")
    except (SoupError, *USER_ERRORS) as err:
        raise SystemExit(f"error: {err}") from None
    for step in steps:
        print(f"greedy soup: + {step.run}: {step.top1:.1%} ({'kept' if step.kept else 'left out'})")
    print(f"soup of {', '.join(R.read_metrics(final)['soup_of'])}: {final}")
    publish_and_record(TrainConfig(record=args.record, db=args.db), final)
    return final


def cli() -> None:
    """The `arena-soup` console script: `main` without its return value (which would become the exit status)."""
    main()


if __name__ == "__main__":
    cli()
