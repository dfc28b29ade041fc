#!/usr/bin/env python
"""The reproduction tables of reference/README.md, written from the shipped run folders.

    python reference/contest.py            # rewrite the tables between the contest markers in reference/README.md
    python reference/contest.py --check    # exit 1 when the README's tables are not what the run folders say

One table per task, best validation top-1 first: the system, how it learned, its cost, its figures and the source
study's figure for that system where there is one. Under each table, the CNN lecture's question (head only, or the
whole network?) answered by the task's linear-probe and full fine-tuning rows, with the paired test of
`python -m leaderboard compare`, and each run's command.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import yaml

import runfolder as R
from runfolder.metrics import METRIC_SPECS
from trainers.distill import teacher_runs
from trainers.models import weight_files
from verdict import compare_runs

REFERENCE = Path(__file__).resolve().parent
README = REFERENCE / "README.md"
RECIPES = REFERENCE.parent / "trainers" / "recipes"
# dataset -> the bar each task's best contestant must clear: at or above the source study's best figure on that task
# (README.md, "Source studies": chest X-ray 92.3% and 87.1%, Tiny ImageNet's pretrained ResNet50 62.3% / 82.1%),
# the published mini-Xception's 66% for FER2013 (the report gives none), and 92% for CIFAR-10, ten points above
# the report's 82%, since its frozen-ResNet50 recipe is weak against any fine-tune.
TARGETS = {
    "chest-xray": {"top1": 0.93},
    "chest-xray-3": {"top1": 0.875},
    "fer2013": {"top1": 0.66},
    "tiny-imagenet": {"top1": 0.623, "top5": 0.821},
    "cifar10": {"top1": 0.92},
}
BEGIN, END = "<!-- contest tables: begin (python reference/contest.py) -->", "<!-- contest tables: end -->"
TASKS = {  # dataset -> heading
    "chest-xray": "Chest X-ray, 2 classes (NORMAL / PNEUMONIA)",
    "chest-xray-3": "Chest X-ray, 3 classes (NORMAL / BACTERIA / VIRUS)",
    "fer2013": "FER2013",
    "tiny-imagenet": "Tiny ImageNet-200",
    "cifar10": "CIFAR-10",
}
# (dataset, architecture) -> the source study's figure for the system this run reproduces (README.md, "Source
# studies"); the figures each task must beat are in the README's "Where each task stands".
CHEST_REPORT_BEST = {"chest-xray": "92.3%", "chest-xray-3": "87.1%"}  # not attributed to one of its three CNNs
STUDY_FIGURES = {
    **{(task, f"xray_cnn{depth}"): f"chest X-ray report: {figure} test, its best network (not attributed)"
       for task, figure in CHEST_REPORT_BEST.items() for depth in (1, 2, 3)},
    ("fer2013", "mini_xception"): "mini-Xception, Arriaga et al. (2017): 66% test",
    ("tiny-imagenet", "et_net"): "Tiny ImageNet report, E.T.: 34.7% / 55.1% top-5",
    ("cifar10", "efficientnet_lite0_gmp_bn_head"): "CIFAR-10 report, this head on a frozen ResNet50: 82% test",
}


REPRODUCTION_NOTE = [
    "\"wall time\" is the whole run on the hardware named, data loading included; for a linear probe whose features "
    "an earlier run had cached (`--feature-cache-dir`), the time computing them took is added; so is the "
    "training time of every run a second stage, a soup or a distilled run builds on, each run once, as far back "
    "as its `metrics.json` records them (`lineage`; a run recorded before lineages counts its own first stages "
    "and teachers only). `DATA` is the directory the archives were "
    "unpacked into (\"Commands\", below).", ""]


def runs_by_task() -> dict[str, list[Path]]:
    tasks: dict[str, list[Path]] = {}
    for run in sorted(R.find_runs(REFERENCE)):
        metrics = R.read_metrics(run)
        if metrics["eval_split"] != "val":  # the targets are checked on validation; the test splits are withheld
            raise SystemExit(f"error: {run.name} is scored on its {metrics['eval_split']} split; the contest ranks "
                             "runs on validation")
        tasks.setdefault(metrics["dataset"], []).append(run)
    return {task: sorted(runs, key=lambda r: -R.read_metrics(r)["top1"]) for task, runs in tasks.items()}


def shown(key: str, metrics: dict) -> str:
    """A metric as the product shows it everywhere ('94.4%', '3.38 M')."""
    return METRIC_SPECS[key].text(metrics.get(key))


def wall_time(metrics: dict) -> str:
    """The whole run: every run its weights or targets came from, and feature caching even when an earlier run
    computed the features (`runfolder.whole_wall_s`)."""
    seconds = R.whole_wall_s(metrics)
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def input_size(metrics: dict) -> str:
    """The training size, and the test size where the run evaluates at another one (--test-img-size)."""
    train, test = metrics["img_size"], metrics.get("test_img_size", metrics["img_size"])
    return f"{train} px" if test == train else f"{train} px, tested at {test} px"


@functools.cache  # asked for each run's epochs cell and again for its commands
def first_stage_recipes(run: Path) -> tuple[Path, ...]:
    """The recipes whose runs wrote the weights this run started from (`--weights runs/<its name>/...`; a soup:
    several, comma-joined), if any."""
    return recipes_of(R.read_train_config(run).get("weights"), run)


def recipes_of(weights: str | None, source: Path) -> tuple[Path, ...]:
    return tuple(recipe_named(source, path.parent.name) for path in weight_files(weights)) if weights else ()


def teacher_recipes(config: dict, source: Path) -> tuple[Path, ...]:
    """The recipes of a distilled run's teachers (`--teachers runs/<name>,...`), if any."""
    teachers = config.get("teachers")
    return tuple(recipe_named(source, Path(run).name) for run in teacher_runs(teachers)) if teachers else ()


def earlier_recipes(run: Path) -> list[Path]:
    """Every recipe to run before this one, earliest first: its first stages and teachers, and theirs (a soup of a
    second stage and a run trained on from it: three stages deep)."""
    ordered: list[Path] = []

    def visit(recipe: Path) -> None:
        for earlier in builds_on(recipe_config(recipe), recipe):
            visit(earlier)
        if recipe not in ordered:
            ordered.append(recipe)

    for recipe in builds_on(R.read_train_config(run), run):
        visit(recipe)
    return ordered


def builds_on(config: dict, source: Path) -> tuple[Path, ...]:
    """The recipes of the runs a configuration starts from (`--weights`) and learns from (`--teachers`)."""
    return (*recipes_of(config.get("weights"), source), *teacher_recipes(config, source))


def recipe_named(source: Path, name: str) -> Path:
    for recipe in sorted(RECIPES.glob("*.yaml")):
        if recipe_config(recipe).get("name") == name:
            return recipe
    raise SystemExit(f"error: {source}: it builds on run {name} (its weights or its teacher), but no recipe in "
                     f"{RECIPES} is named so")


@functools.cache  # every recipe_named lookup reads every recipe
def recipe_config(recipe: Path) -> dict:
    return yaml.safe_load(recipe.read_text(encoding="utf-8"))


def epochs(run: Path, metrics: dict) -> str:
    """The run's epochs, after its first stage's: all of its recipe's, or as many as it ran before it stopped
    (`first_stage_epochs`, recorded by the second stage); a soup's, after the recipes of its ingredients and of
    their first stages."""
    recipes = first_stage_recipes(run)
    if metrics.get("distilled_from"):
        return f"{metrics['epochs']}, distilled from {len(metrics['distilled_from'])} runs trained by {stages(run)}"
    if not recipes:
        return f"{metrics['epochs']}"
    if len(recipes) > 1:  # the soup records only its longest ingredient's epochs
        return f"{metrics['epochs']}: a soup of {len(recipes)} runs, trained by {stages(run)}"
    planned = recipe_config(recipes[0])["epochs"]
    ran = metrics.get("first_stage_epochs", planned)
    first = f"`{recipes[0].name}`" if ran == planned else f"{ran} of the {planned} epochs of `{recipes[0].name}`"
    return f"{metrics['epochs']}, after {first}"


def stages(run: Path) -> str:
    """Each earlier stage's recipe and its planned epochs."""
    return ", ".join(f"`{recipe.name}` ({recipe_config(recipe)['epochs']})" for recipe in earlier_recipes(run))


def commands(run: Path) -> list[str]:
    """The run's command, after those of the runs whose weights it started from (a second stage's first, a soup's
    ingredients, and their own first stages). Its data folder is the one its sample ids are relative to, named by
    the placeholder `pack_run` left in its train_config.yaml (`path/to/chest_xray`)."""
    if not (data_dir := R.read_train_config(run).get("data_dir")):
        raise SystemExit(f"error: {run}: its {R.TRAIN_CONFIG} names no data_dir; pack it again with "
                         "reference/pack_run.py --data-dir DIR")
    folder = Path(data_dir).name
    configs = [*(recipe.relative_to(REFERENCE.parent) for recipe in earlier_recipes(run)),
               f"reference/{run.name}/{R.TRAIN_CONFIG}"]
    return [f"python trainers/finetune.py --config {config} --data-dir DATA/{folder}" for config in configs]


def row(run: Path, dataset: str) -> list[str]:
    m = R.read_metrics(run)
    figure = STUDY_FIGURES.get((dataset, m["model"]), "")
    cells = [f"`{run.name}`", m["strategy"], shown("params", m), shown("macs", m), input_size(m), epochs(run, m),
             f"{m['train_samples']:,}", wall_time(m), m["hardware"], f"**{shown('top1', m)}**",
             *([shown("top5", m)] if "top5" in m else []), shown("macro_f1", m)]
    if dataset == "chest-xray":
        cells.append(f"{shown('sensitivity', m)} / {shown('specificity', m)}")
    return [*cells, figure]


def head_only_against_full(runs: list[Path]) -> str:
    by_strategy = {R.read_metrics(r)["strategy"]: r for r in runs if "lite0" in R.read_metrics(r)["model"]}
    if not {"linear-probe", "full"} <= set(by_strategy):
        return ""
    head, full = by_strategy["linear-probe"], by_strategy["full"]
    comparison = compare_runs(head, full, "head only", "full fine-tuning")
    head_m, full_m = R.read_metrics(head), R.read_metrics(full)
    return (f"Head only ({input_size(head_m)}) against full fine-tuning ({input_size(full_m)}), the CNN "
            f"lecture's question: {shown('top1', head_m)} against {shown('top1', full_m)} on the same "
            f"{comparison.a.total:,} images; "
            f"{comparison.verdict} (exact McNemar test, `python -m leaderboard compare`).")


def task_table(dataset: str, runs: list[Path]) -> str:
    heading = TASKS[dataset]
    header = ["system", "strategy", "params", "MACs", "input", "epochs", "training images", "wall time", "hardware",
              "val top-1", *(["top-5"] if "top5" in R.read_metrics(runs[0]) else []),
              "macro-F1", "source study"]
    if dataset == "chest-xray":
        header.insert(-1, "sensitivity / specificity")
    lines = [f"### {heading}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row(run, dataset)) + " |" for run in runs]
    verdict = head_only_against_full(runs)
    lines += ["", *([verdict, ""] if verdict else []), "Commands:", "", "```sh"]
    lines += [command for run in runs for command in commands(run)]
    lines += ["```", ""]
    return "\n".join(lines)


def points(margin: float) -> str:
    """A margin in percentage points, with a second decimal where one would round it to a sign-less zero."""
    return f"{margin:+.1f} points" if abs(margin) >= 0.05 else f"{margin:+.2f} points"


def standing(dataset: str, runs: list[Path]) -> str:
    """One row of "where each task stands": the target, the best contestant, and by how much it clears or misses."""
    target = TARGETS[dataset]
    best = R.read_metrics(runs[0])
    goal = " and ".join(f"≥ {METRIC_SPECS[key].text(value)} {METRIC_SPECS[key].label}" for key, value in target.items())
    got = ", ".join(f"{shown(key, best)} {METRIC_SPECS[key].label}" for key in target)
    margins = [(best[key] - value) * 100 for key, value in target.items()]
    verdict = ("yes" if min(margins) >= 0 else "no") + ", " + ", ".join(points(m) for m in margins)
    return f"| {TASKS[dataset]} | {goal} | `{runs[0].name}`: {got} | {verdict} |"


def tables() -> str:
    tasks = runs_by_task()
    present = [dataset for dataset in TASKS if dataset in tasks]
    stand = ["The targets stand at or above each source study's best figure on its task (`TARGETS` in "
             "`reference/contest.py` says where each comes from).", "",
             "| task | target | best contestant on validation | met on validation? |", "|---|---|---|---|",
             *(standing(dataset, tasks[dataset]) for dataset in present), ""]
    return "\n".join(["## Where each task stands", "", *stand, "## Reproduction tables", "", *REPRODUCTION_NOTE,
                      *(task_table(dataset, tasks[dataset]) for dataset in present)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md's tables are out of date")
    args = parser.parse_args()
    text = README.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"error: {README} lacks the markers {BEGIN} ... {END}")
    head, rest = text.split(BEGIN, 1)
    updated = f"{head}{BEGIN}\n\n{tables()}\n{END}{rest.split(END, 1)[1]}"
    if args.check:
        if updated != text:
            sys.exit(f"{README} is out of date: run python reference/contest.py")
        return
    R.write_text(README, updated)


if __name__ == "__main__":
    main()
