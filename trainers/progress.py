"""The one progress-bar policy of a training run's long work: epochs, preloading, feature caching, teacher passes."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

LOG_INTERVAL_S = 60.0  # a run logging to a file (nohup, CI) gets one update a minute, not ten a second


def progress(iterable: Iterable, desc: str, show: bool = True, **kwargs: Any) -> tqdm:
    """tqdm on stderr, cleared when done: live on a terminal, once a minute in a log file, and nowhere when `show`
    is false (the ranks of a torchrun other than the first)."""
    interval = 0.1 if sys.stderr.isatty() else LOG_INTERVAL_S
    return tqdm(iterable, desc=desc, disable=not show, mininterval=interval, leave=False, **kwargs)
