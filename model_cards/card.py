"""Render a run folder's model card (README.md) from metrics.json, config.json and train_config.yaml.

The front matter is built with huggingface_hub's card classes so that `ModelCard.load(...).data.eval_results`
gives back exactly the metrics.json values; the body comes from the Jinja template `template.md` next to this file.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from model_cards.datasets import DatasetInfo, dataset_info
from runfolder import (
    CARD,
    CONFUSION_PNG,
    HUB_PREFIX,
    LINEAGE,
    NO_PRETRAINING,
    TRAIN_CONFIG,
    read_config,
    read_metrics,
    read_train_config,
    whole_wall_s,
    write_bytes,
)
from runfolder.metrics import HUB_METRICS, METRIC_SPECS, PERCENT, READABLE_CLASSES
from verdict import Accuracy, accuracy_from_metrics

CUSTOM_MODELS_MODULE = "trainers.custom_models"  # where the source studies' networks register with timm

TEMPLATE = Path(__file__).with_name("template.md")
TASK = "image-classification"


def base_model_id(pretrained_tag: str | None) -> str | None:
    """Hub id of the pretrained weights: timm's `arch.tag` lives under `timm/`; no pretraining or files have none."""
    tag = (pretrained_tag or "").removeprefix(HUB_PREFIX)
    if re.fullmatch(r"[\w\-.]+/[\w\-.]+", tag):
        return tag
    return f"timm/{tag}" if re.fullmatch(r"[\w\-]+\.[\w\-]+", tag) else None


def eval_results(metrics: dict[str, Any], info: DatasetInfo) -> list[EvalResult]:
    """One EvalResult per HUB_METRICS figure present (not null) in metrics.json, values untouched."""
    return [
        EvalResult(
            task_type=TASK,
            task_name="Image Classification",
            dataset_type=info.hub_type,
            dataset_name=info.name,
            dataset_config=info.config,
            dataset_split=metrics.get("eval_split"),
            metric_type=spec.hub_type,
            metric_name=spec.title,
            metric_config=spec.hub_config,
            metric_value=metrics[spec.key],
        )
        for spec in HUB_METRICS
        if metrics.get(spec.key) is not None
    ]


def metrics_from_eval_results(results: list[EvalResult]) -> dict[str, Any]:
    """Inverse of `eval_results`: {metrics.json key: value} for the figures a card carries."""
    by_type = {spec.hub_type: spec.key for spec in HUB_METRICS}
    return {by_type[r.metric_type]: r.metric_value for r in results if r.metric_type in by_type}


def card_data(metrics: dict[str, Any], run_id: str) -> ModelCardData:
    """Front matter: library, task, licence, datasets, base model, metric ids and model-index (named by run id)."""
    info = dataset_info(metrics["dataset"])
    results = eval_results(metrics, info)
    other = info.model_license == "other"  # the Hub wants a name (and link) for non-standard licences
    return ModelCardData(
        library_name="timm",
        pipeline_tag=TASK,
        license=info.model_license,
        license_name=f"{metrics['dataset'].removeprefix('hf:').replace('/', '-')}-terms" if other else None,
        license_link=info.terms_url if other else None,
        tags=[TASK, "timm", "backbone-arena", metrics["model"].split(".")[0], metrics["dataset"].removeprefix("hf:")],
        datasets=[info.hub_id] if info.hub_id else None,
        base_model=base_model_id(metrics.get("pretrained_tag")),
        metrics=sorted({r.metric_type for r in results}),
        model_name=run_id,  # the leaderboard's key, so a synced Hub card updates the local run's row
        eval_results=results,
    )


def _flatten(config: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in config.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _cell(value: Any) -> str:
    """Markdown table cell: readable numbers, lists comma-joined, pipes escaped."""
    if isinstance(value, bool) or value is None:
        text = "—" if value is None else str(value)
    elif isinstance(value, int):
        text = f"{value:,}"
    elif isinstance(value, float):
        text = f"{value:,.1f}" if abs(value) >= 100 else f"{value:.4f}" if abs(value) >= 1e-3 else f"{value:.3g}"
    elif isinstance(value, list | tuple):
        text = ", ".join(map(str, value))
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _result_rows(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """(title, value with unit) of every METRIC_SPECS figure the run has, in table order."""
    return [(spec.title, spec.text(metrics[key])) for key, spec in METRIC_SPECS.items() if metrics.get(key) is not None]


def top1_interval(accuracy: Accuracy | None) -> str | None:
    """"87.7%–89.4%": the 95% Wilson interval of top-1, in the results table's format."""
    if accuracy is None:
        return None
    return f"{PERCENT.number(accuracy.interval.low)}–{PERCENT.number(accuracy.interval.high)}"


def _per_class_rows(metrics: dict[str, Any]) -> list[list[str]]:
    return [
        [_cell(c["label"]), *(PERCENT.number(c[score]) for score in ("precision", "recall", "f1")), _cell(c["support"])]
        for c in metrics.get("per_class", [])
    ]


def _load_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    train_config = read_train_config(run_dir) if (run_dir / TRAIN_CONFIG).is_file() else {}
    return read_metrics(run_dir), read_config(run_dir), train_config or {}


def registering_module(arch: str) -> str | None:
    """The module a reader must import before timm can build `arch`: None for timm's own architectures. The source
    studies' networks register in trainers.custom_models, which this package cannot import (trainers imports it)."""
    import timm.models

    if timm.models.is_model(arch) and timm.models.model_entrypoint(arch).__module__.startswith("timm."):
        return None
    return CUSTOM_MODELS_MODULE


def render_card(run_dir: Path, hub_repo: str | None = None) -> ModelCard:
    """Build the model card of a run folder; `hub_repo` ("ORG/NAME") fills the usage snippets when known."""
    run_dir = Path(run_dir)
    metrics, config, train_config = _load_run(run_dir)
    info = dataset_info(metrics["dataset"])
    data = card_data(metrics, run_dir.name)
    arch = config.get("architecture", metrics["model"])
    return ModelCard.from_template(
        data,
        template_path=str(TEMPLATE),
        run_id=run_dir.name,
        m=metrics,
        info=info,
        arch=arch,
        registering_module=registering_module(arch),
        image_mode="L" if config.get("pretrained_cfg", {}).get("input_size", [3])[0] == 1 else "RGB",
        label_names=config.get("label_names", [c["label"] for c in metrics.get("per_class", [])]),
        hub_ref=hub_repo or "ORG/NAME",
        published=hub_repo is not None,
        base_model_id=data.base_model,
        from_scratch=metrics.get("pretrained_tag") in (None, NO_PRETRAINING),
        setup_rows=[(key, _cell(value)) for key, value in _flatten(train_config)],
        result_rows=_result_rows(metrics),
        per_class_rows=_per_class_rows(metrics),
        confusion_png=CONFUSION_PNG if (run_dir / CONFUSION_PNG).is_file() else None,
        top1_interval=top1_interval(accuracy_from_metrics(metrics)),
        medical=info.medical,
        whole_minutes=round(whole_wall_s(metrics) / 60) if LINEAGE in metrics else None,
    )


def draw_confusion_matrix(run_dir: Path) -> Path | None:
    """Write confusion_matrix.png from metrics.json; None when matplotlib is missing or there is no matrix."""
    try:  # matplotlib is optional: without it the card simply has no image
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    metrics, config, _ = _load_run(run_dir)
    matrix = metrics.get("confusion_matrix")
    if not matrix:
        return None
    labels = config.get("label_names") or [str(i) for i in range(len(matrix))]
    n = len(matrix)
    size = min(3 + 0.45 * n, 24)
    # Figure + Agg canvas, not pyplot: no global backend or figure state in the trainer/app process.
    fig = Figure(figsize=(size, size), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8)
    if n <= READABLE_CLASSES:
        ax.set_xticks(range(n), labels, rotation=90)
        ax.set_yticks(range(n), labels)
        peak = max(max(row) for row in matrix) or 1
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                ax.text(j, i, str(count), ha="center", va="center", color="white" if count > peak / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{metrics['model']} on {metrics['dataset']} ({metrics.get('eval_split', 'test')})")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    path = run_dir / CONFUSION_PNG
    write_bytes(path, buffer.getvalue())
    return path


def write_card(run_dir: Path, hub_repo: str | None = None) -> Path:
    """Draw the confusion matrix and (re)write run_dir/README.md atomically; returns the README path."""
    run_dir = Path(run_dir)
    draw_confusion_matrix(run_dir)
    path = run_dir / CARD
    write_bytes(path, str(render_card(run_dir, hub_repo)).encode("utf-8"))
    return path
