"""What each metrics.json figure is and how it reads: the one table that cards, dashboard, CLI and summary share.

A `MetricSpec` names a metrics.json key, its short label (table headers, plot axes), its long title (model cards,
the Hub's metric name), its format and unit, whether higher is better, and its model-index type when the figure
is published to the Hub. Every view formats a value with `MetricSpec.text`, so a fraction reads the same
everywhere (one decimal of a percent: 94.4%) and a missing value is an empty cell, never "None".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

from runfolder import TEMPERATURE


class Style(Enum):
    PERCENT = "percent"  # a fraction in 0–1, shown as a percent with `digits` decimals
    FIXED = "fixed"  # `digits` decimals, thousands separated
    SIGNIFICANT = "significant"  # `digits` significant digits: 755.88 → 756, 13.357 → 13.4, 0.5 → 0.5
    TEXT = "text"  # shown as is


@dataclass(frozen=True)
class Format:
    style: Style
    digits: int = 0

    def number(self, value: float) -> str:
        """`value` (already in the display unit) as text, without unit."""
        if self.style is Style.PERCENT:
            return f"{value:.{self.digits}%}"
        if self.style is Style.FIXED:
            return f"{value:,.{self.digits}f}"
        if self.style is Style.SIGNIFICANT:  # rounded, then without trailing zeros, as printf's %.3g in Streamlit
            return f"{float(f'{value:.{self.digits}g}'):,g}"
        return str(value)

    @property
    def decimals(self) -> int | None:
        """The decimals of the value (a percent: of its fraction) that `number` shows; None: it keeps its digits."""
        return {Style.PERCENT: self.digits + 2, Style.FIXED: self.digits}.get(self.style)


PERCENT = Format(Style.PERCENT, 1)  # the one precision of every percentage the product shows
SCORE = Format(Style.FIXED, 3)  # a 0–1 score that is not a share (AUROC, calibration error)
INTEGER = Format(Style.FIXED, 0)
TEXT = Format(Style.TEXT)


@dataclass(frozen=True)
class MetricSpec:
    key: str  # metrics.json key (and leaderboard store column, where the store has one), or a figure derived from them
    label: str  # short: table headers, plot axes
    title: str  # long: model-card rows; the Hub metric name for published figures
    format: Format
    higher_is_better: bool | None = None  # None: neither a score nor a cost (a seed, a revision)
    unit: str = ""  # display unit, e.g. "ms", "M"
    scale: float = 1.0  # metrics.json value / scale = value in `unit` (params / 1e6 = millions)
    hub_type: str | None = None  # model-index metric type (a Hub metric id); None: not published
    hub_config: str | None = None  # model-index metric config, e.g. "macro" for F1
    help: str = ""  # one line for tooltips

    @property
    def heading(self) -> str:
        """Column header of a table whose cells carry no unit: 'latency (ms)'."""
        return f"{self.label} ({self.unit})" if self.unit else self.label

    @property
    def column(self) -> str:
        """Name of a table column holding the value in its display unit: params → params_m, latency_ms as is."""
        return self.key if self.scale == 1 else f"{self.key}_{self.unit.lower()}"

    def number(self, value: Any) -> str:
        """The value in its display unit, without the unit; '' when missing."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        if self.format.style is Style.TEXT or isinstance(value, str):
            return str(value)
        return self.format.number(value / self.scale)

    def text(self, value: Any) -> str:
        """The value with its unit ('13.4 ms', '3.63 M', '94.4%'); '' when missing."""
        number = self.number(value)
        return f"{number} {self.unit}" if number and self.unit else number


METRIC_SPECS: dict[str, MetricSpec] = {
    spec.key: spec
    for spec in (
        MetricSpec("top1", "top-1", "Top-1 accuracy", PERCENT, True, hub_type="accuracy"),
        MetricSpec("top5", "top-5", "Top-5 accuracy", PERCENT, True, hub_type="top_5_accuracy"),
        MetricSpec("macro_f1", "macro-F1", "Macro F1", PERCENT, True, hub_type="f1", hub_config="macro"),
        MetricSpec("auroc", "AUROC", "AUROC", SCORE, True, hub_type="roc_auc", help="binary tasks only"),
        MetricSpec("sensitivity", "sensitivity", "Sensitivity (recall of the positive class)", PERCENT, True),
        MetricSpec("specificity", "specificity", "Specificity", PERCENT, True),
        MetricSpec("loss", "loss", "Loss (cross-entropy)", SCORE, False),
        MetricSpec("ece", "ECE", "Expected calibration error", SCORE, False),
        MetricSpec("ece_calibrated", "ECE at T", "Expected calibration error at the fitted temperature", SCORE,
                   False),
        MetricSpec(TEMPERATURE, "temperature", "Softmax temperature (fit on validation; in config.json)",
                   SCORE, help="probabilities are softmax(logits / T)"),
        MetricSpec("params", "params", "Parameters", Format(Style.SIGNIFICANT, 3), False, unit="M", scale=1e6),
        MetricSpec("macs", "MACs", "MACs per image", Format(Style.FIXED, 3), False, unit="G", scale=1e9),
        MetricSpec("train_images_per_s", "train img/s", "Training throughput (images/s)", Format(Style.FIXED, 1),
                   True),  # fmt: skip
        MetricSpec("latency_ms", "latency", "Inference latency, batch 1", Format(Style.SIGNIFICANT, 3), False,
                   unit="ms"),  # fmt: skip
        MetricSpec("epochs", "epochs", "Epochs", INTEGER, False),  # fewer, for the same score, is cheaper
        MetricSpec("best_epoch", "best epoch", "Best epoch", INTEGER),
        MetricSpec("wall_s", "wall time", "Wall time", INTEGER, False, unit="s"),
        MetricSpec("whole_wall_s", "training time", "Training time, every stage", Format(Style.SIGNIFICANT, 3), False,
                   unit="min", scale=60,
                   help="the wall time with every run its weights or targets came from (runfolder.whole_wall_s)"),
        MetricSpec("hardware", "hardware", "Hardware", TEXT),
        MetricSpec("seed", "seed", "Seed", TEXT),
        MetricSpec("git_rev", "git revision", "Git revision", TEXT),
    )
}
READABLE_CLASSES = 20  # above this, a confusion matrix's cells and tick labels are unreadable (cards, dashboard)
SCORES = ("top1", "top5", "macro_f1", "auroc")  # the headline scores: ranked on, published to the Hub
COSTS = ("params", "macs", "latency_ms")  # what a run costs at inference: the trade-off axes
HUB_METRICS = tuple(spec for spec in METRIC_SPECS.values() if spec.hub_type)  # model-index order
