"""How leaderboard rows read as table columns: short model names, and metric cells from runfolder.metrics."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

import verdict as V
from runfolder.metrics import METRIC_SPECS

TIMM_PREFIXES = re.compile(r"^(tf|tv|gluon|timm)_")  # timm's ports of other frameworks' weights
# The verdict's columns (leaderboard.standings): kept at full width and right-aligned like the metrics.
VERDICT_HEADINGS = {"tier": "tier", "top1_ci": V.TOP1_CI_HEADING}


def short_model_name(model: str) -> str:
    """A backbone's name without Hub prefix, pretrained tag or port prefix: 'tf_efficientnet_lite0.in1k' →
    'efficientnet_lite0', the short name the trainer's --model accepts."""
    return TIMM_PREFIXES.sub("", model.rsplit("/", 1)[-1].split(".")[0])


@dataclass(frozen=True)
class Column:
    """A store column as a text table shows it: a header, right-aligned numbers, '' for a missing value."""

    key: str

    @property
    def heading(self) -> str:
        spec = METRIC_SPECS.get(self.key)
        return spec.label if spec else VERDICT_HEADINGS.get(self.key, self.key.replace("_", " "))

    @property
    def numeric(self) -> bool:
        return self.key in METRIC_SPECS or self.key in VERDICT_HEADINGS

    def text(self, value: Any) -> str:
        if self.key in METRIC_SPECS:
            return METRIC_SPECS[self.key].text(value)
        return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
