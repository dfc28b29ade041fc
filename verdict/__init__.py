"""The verdict: is the difference between two runs real? Paired tests and intervals on runs' predictions.

Two runs are *paired* when their predictions.parquet files cover the same evaluation samples: the same
`sample_id` set with the same true labels. For a paired comparison this module gives the exact McNemar test on the
discordant pairs, a paired bootstrap 95% interval for the top-1 difference, and each run's own 95% Wilson
interval for top-1. Within a dataset, runs are put in *tiers*: every run is compared with the best run on the same
samples (Holm-corrected); those that cannot be told apart from the best form tier 1, and so on.

Light on purpose (numpy, pandas, scipy; no torch): the leaderboard CLI, the dashboard and the model card use it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from scipy.stats import binom

from runfolder import PREDICTIONS
from runfolder.metrics import PERCENT

ALPHA = 0.05  # significance level of every test here; the intervals are (1 - ALPHA) = 95%
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
OUTCOME_COLUMNS = ("sample_id", "true_label", "pred_label")
# What a tier means and how the top-1 interval is headed, in every view (CLI, dashboard).
TIER_RULE = (f"cannot be told apart from the dataset's best run on the same samples (exact McNemar, Holm-corrected, "
             f"{ALPHA:.0%})")
TOP1_CI_HEADING = f"top-1 ± {1 - ALPHA:.0%} CI"
OUTCOMES = {
    "both_right": "both right",
    "only_a": "only A right",
    "only_b": "only B right",
    "both_wrong": "both wrong",
}


class PredictionsError(ValueError):
    """A predictions.parquet that cannot be compared (missing columns, duplicate sample ids), with the reason."""


# --- one run ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def __str__(self) -> str:
        return f"[{PERCENT.number(self.low)}, {PERCENT.number(self.high)}]"


@dataclass(frozen=True)
class Accuracy:
    """Top-1 of one run as a count, with its 95% Wilson score interval."""

    correct: int
    total: int

    @property
    def top1(self) -> float:
        return self.correct / self.total if self.total else float("nan")

    @property
    def interval(self) -> Interval:
        return wilson_interval(self.correct, self.total)

    @property
    def half_width(self) -> float:
        """The ± of "top-1 ± interval": half the Wilson interval's width (it is not symmetric around top-1)."""
        interval = self.interval
        return (interval.high - interval.low) / 2

    def __str__(self) -> str:
        return f"{PERCENT.number(self.top1)} (95% CI {self.interval}, {self.correct:,}/{self.total:,})"


def wilson_interval(correct: int, total: int, confidence: float = 1 - ALPHA) -> Interval:
    """The Wilson score interval of a proportion: unlike the normal approximation it stays inside [0, 1] and keeps
    its coverage near 0% and 100% and on small test sets.

    Newcombe's (1998) formula exactly as scipy.stats.binomtest(correct, total).proportion_ci(method="wilson")
    computes it (the tests check they agree). Written out because binomtest first computes an exact p-value that
    is not needed here, about 8 ms a call: too slow for a leaderboard of 1,000 runs.
    """
    if total <= 0:
        return Interval(float("nan"), float("nan"))
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    share = correct / total
    denominator = 2 * (total + z**2)
    center = (2 * total * share + z**2) / denominator
    delta = z / denominator * math.sqrt(4 * total * share * (1 - share) + z**2)
    return Interval(0.0 if correct == 0 else center - delta, 1.0 if correct == total else center + delta)


def accuracy_from_metrics(metrics: Mapping) -> Accuracy | None:
    """A run's top-1 count from its metrics.json (top-1 × num_samples); None when the sample count is unknown."""
    total = metrics.get("num_samples")
    top1 = metrics.get("top1")
    if not isinstance(total, int) or total <= 0 or not isinstance(top1, int | float):
        return None
    return Accuracy(round(float(top1) * total), total)


# --- reading predictions ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcomes:
    """One run's answers, sorted by sample id (ids unique): Arrow string arrays, so that pairing, sorting and
    hashing run in Arrow's C++ kernels (Python strings would cost seconds at 100k samples)."""

    sample_id: pa.Array
    true_label: pa.Array
    pred_label: pa.Array
    correct: np.ndarray = field(init=False, repr=False)  # bool per sample

    def __post_init__(self) -> None:
        right = pc.equal(self.true_label, self.pred_label).to_numpy(zero_copy_only=False).astype(bool)
        object.__setattr__(self, "correct", right)

    def __len__(self) -> int:
        return len(self.sample_id)


def outcomes_table(table: pa.Table, source: str = "predictions") -> Outcomes:
    """Outcomes from a table with OUTCOME_COLUMNS (rows in any order, labels of any type); PredictionsError if a
    column is missing or a sample id repeats."""
    missing = [c for c in OUTCOME_COLUMNS if c not in table.column_names]
    if missing:
        raise PredictionsError(f"{source}: no column {', '.join(missing)}")
    columns = [pc.cast(table[c], pa.large_string()) for c in OUTCOME_COLUMNS]
    order = pc.sort_indices(columns[0])
    ids, true, pred = (pc.take(c, order).combine_chunks() for c in columns)
    repeated = pc.equal(ids[1:], ids[:-1])
    if len(ids) > 1 and pc.any(repeated).as_py():
        raise PredictionsError(f"{source}: sample id {ids[1:].filter(repeated)[0].as_py()!r} appears twice")
    return Outcomes(ids, true, pred)


def outcomes_frame(frame: pd.DataFrame, source: str = "predictions") -> Outcomes:
    """Outcomes of a predictions DataFrame (the dashboard's read_predictions)."""
    present = [c for c in OUTCOME_COLUMNS if c in frame]
    return outcomes_table(pa.table({c: pa.array(frame[c].astype(str).to_numpy(dtype=object)) for c in present}),
                          source)  # fmt: skip


def read_outcomes(run_dir: Path | str) -> Outcomes:
    """A run folder's predictions.parquet as Outcomes."""
    path = Path(run_dir) / PREDICTIONS
    try:
        # ParquetFile.read, not pd.read_parquet: a tenth of the time on small files (tiering reads every run's)
        table = pq.ParquetFile(path).read(columns=list(OUTCOME_COLUMNS), use_threads=False)
    except (KeyError, pa.ArrowInvalid) as error:
        raise PredictionsError(f"{path}: needs the columns {', '.join(OUTCOME_COLUMNS)} ({error})") from error
    return outcomes_table(table, str(path))


# --- pairing ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pairing:
    """Whether two runs were evaluated on the same samples; `reason` says why not, in one sentence."""

    paired: bool
    reason: str = ""


def pairing(a: Outcomes, b: Outcomes) -> Pairing:
    """Paired when both runs hold the same sample ids with the same true labels."""
    if len(a) != len(b):
        return Pairing(False, f"A was evaluated on {len(a):,} samples and B on {len(b):,}, so no sample-by-sample "
                              "test is possible.")  # fmt: skip
    if not a.sample_id.equals(b.sample_id):
        only_a = a.sample_id.filter(pc.invert(pc.is_in(a.sample_id, value_set=b.sample_id)))
        example = only_a[0].as_py() if len(only_a) else a.sample_id[0].as_py()
        return Pairing(False, f"A and B were evaluated on different samples ({len(only_a):,} of A's {len(a):,} are "
                              f"not in B, e.g. {example}), so no sample-by-sample test is possible.")  # fmt: skip
    if not a.true_label.equals(b.true_label):
        differs = pc.not_equal(a.true_label, b.true_label)
        i = pc.index(differs, True).as_py()
        example = f"{a.sample_id[i].as_py()}: {a.true_label[i].as_py()} in A, {b.true_label[i].as_py()} in B"
        return Pairing(False, f"{pc.sum(differs).as_py():,} samples carry different true labels in A and B (e.g. "
                              f"{example}), so no sample-by-sample test is possible.")  # fmt: skip
    return Pairing(True)


# --- the tests -------------------------------------------------------------------------------------------------


def mcnemar_p(only_a: np.ndarray | int, only_b: np.ndarray | int) -> np.ndarray | float:
    """Exact McNemar p-value (two-sided) from the discordant pair counts, vectorised over arrays of counts.

    The binomial form: under "no difference" each discordant pair is A's or B's with probability 1/2, so the p-value
    is the two-sided binomial test of `only_a` in `only_a + only_b` trials, min(1, 2 P(X <= min)). This equals
    scipy.stats.binomtest(only_a, only_a + only_b).pvalue (the tests check it); binom.cdf is used so that tiering
    tests hundreds of runs in one call. No discordant pair: p = 1.
    """
    b, c = np.asarray(only_a), np.asarray(only_b)
    p = np.minimum(1.0, 2 * binom.cdf(np.minimum(b, c), b + c, 0.5))
    p = np.where(b + c == 0, 1.0, p)
    return float(p) if p.ndim == 0 else p


def paired_bootstrap_interval(
    only_a: int, only_b: int, total: int, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> Interval:
    """95% percentile interval of top-1(A) − top-1(B) over `resamples` paired bootstrap resamples (fixed seed).

    Resampling the n sample pairs with replacement and counting the kinds of pair drawn (only A right, only B
    right, the rest) draws those counts from a multinomial distribution: drawing the counts directly is the same
    bootstrap in O(resamples) instead of O(n × resamples) memory and time. Hand-written because
    scipy.stats.bootstrap resamples the n values themselves (100k samples × 10k resamples would not fit the
    one-second budget).
    """
    if total <= 0:
        return Interval(float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    shares = np.array([only_a, only_b, total - only_a - only_b], dtype=np.float64) / total
    counts = rng.multinomial(total, shares, size=resamples)
    differences = (counts[:, 0] - counts[:, 1]) / total
    low, high = np.quantile(differences, [ALPHA / 2, 1 - ALPHA / 2])
    return Interval(float(low), float(high))


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order.

    Hand-written (four lines) because scipy has no family-wise adjustment (stats.false_discovery_control does
    Benjamini-Hochberg/-Yekutieli only), and statsmodels' multipletests would add a dependency for this step.
    """
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p))))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


# --- comparing two runs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedOutcomes:
    """The 2×2 table of a paired comparison: how many samples each pair of outcomes has."""

    both_right: int
    only_a: int
    only_b: int
    both_wrong: int

    @property
    def total(self) -> int:
        return self.both_right + self.only_a + self.only_b + self.both_wrong


@dataclass(frozen=True)
class ClassRecall:
    label: str
    support: int
    recall_a: float
    recall_b: float

    @property
    def difference(self) -> float:
        return self.recall_a - self.recall_b


@dataclass(frozen=True)
class Comparison:
    """Run A against run B: own intervals always; the paired figures only when `pairing.paired`."""

    name_a: str
    name_b: str
    a: Accuracy
    b: Accuracy
    pairing: Pairing
    outcomes: PairedOutcomes | None = None
    difference_interval: Interval | None = None  # of top-1(A) − top-1(B)
    p_value: float | None = None
    per_class: list[ClassRecall] = field(default_factory=list)

    @property
    def difference(self) -> float:
        return self.a.top1 - self.b.top1

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < ALPHA

    @property
    def verdict(self) -> str:
        """One line: "A is better, p = 0.003", "statistically tied, p = 0.41", or why no test was made."""
        if not self.pairing.paired:
            return f"not compared sample by sample: {self.pairing.reason}"
        if not self.significant:
            return f"statistically tied, p = {format_p(self.p_value)}"
        better = self.name_a if self.difference > 0 else self.name_b
        return f"{better} is better, p = {format_p(self.p_value)}"

    def to_dict(self) -> dict:
        """The same figures as the text report, JSON-ready (fractions in 0–1)."""

        def accuracy(acc: Accuracy) -> dict:
            return {"top1": acc.top1, "correct": acc.correct, "samples": acc.total,
                    "interval_95": [acc.interval.low, acc.interval.high], "interval_method": "wilson"}  # fmt: skip

        paired = self.pairing.paired
        return {
            "a": {"run": self.name_a, **accuracy(self.a)},
            "b": {"run": self.name_b, **accuracy(self.b)},
            "paired": paired,
            "not_paired_reason": self.pairing.reason or None,
            "difference": self.difference if paired else None,
            "difference_interval_95": [self.difference_interval.low, self.difference_interval.high] if paired else None,
            "bootstrap": {"resamples": BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED} if paired else None,
            "mcnemar_p": self.p_value,
            "outcomes": vars(self.outcomes) if self.outcomes else None,
            "per_class_recall": [vars(c) | {"difference": c.difference} for c in self.per_class],
            "verdict": self.verdict,
        }


def format_p(p: float | None) -> str:
    return "—" if p is None else f"{p:.2g}"


def paired_outcomes(a: Outcomes, b: Outcomes) -> dict[str, np.ndarray]:
    """OUTCOMES key -> which samples (a bool mask in sample-id order) of two paired runs fall in that cell."""
    right_a, right_b = a.correct, b.correct
    return {"both_right": right_a & right_b, "only_a": right_a & ~right_b, "only_b": ~right_a & right_b,
            "both_wrong": ~(right_a | right_b)}  # fmt: skip


def _per_class(a: Outcomes, b: Outcomes) -> list[ClassRecall]:
    encoded = pc.dictionary_encode(a.true_label)
    labels = encoded.dictionary.to_pylist()
    classes = encoded.indices.to_numpy(zero_copy_only=False)
    support = np.bincount(classes, minlength=len(labels))
    right_a = np.bincount(classes, weights=a.correct, minlength=len(labels))
    right_b = np.bincount(classes, weights=b.correct, minlength=len(labels))
    recalls = [ClassRecall(str(label), int(n), float(ra / n), float(rb / n))
               for label, n, ra, rb in zip(labels, support, right_a, right_b, strict=True)]  # fmt: skip
    return sorted(recalls, key=lambda c: c.label)


def compare(a: Outcomes, b: Outcomes, name_a: str = "A", name_b: str = "B") -> Comparison:
    """Compare two runs' Outcomes: own intervals always; McNemar, bootstrap and per-class recall when paired."""
    own_a, own_b = Accuracy(int(a.correct.sum()), len(a)), Accuracy(int(b.correct.sum()), len(b))
    paired = pairing(a, b)
    if not paired.paired:
        return Comparison(name_a, name_b, own_a, own_b, paired)
    outcomes = PairedOutcomes(**{key: int(mask.sum()) for key, mask in paired_outcomes(a, b).items()})
    return Comparison(
        name_a, name_b, own_a, own_b, paired, outcomes,
        difference_interval=paired_bootstrap_interval(outcomes.only_a, outcomes.only_b, outcomes.total),
        p_value=mcnemar_p(outcomes.only_a, outcomes.only_b),
        per_class=_per_class(a, b),
    )  # fmt: skip


def compare_runs(run_a: Path, run_b: Path, name_a: str | None = None, name_b: str | None = None) -> Comparison:
    """Compare two run folders by their predictions.parquet."""
    return compare(read_outcomes(run_a), read_outcomes(run_b), name_a or Path(run_a).name, name_b or Path(run_b).name)


# --- tiers -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalSet:
    """A run's correctness per sample, in sample-id order, and a key naming its (sample id, true label) set."""

    key: str
    correct: np.ndarray  # bool, one per sample


def _digest_strings(array: pa.Array, digest: hashlib._Hash) -> None:
    """Feed a large_string array's values and boundaries to `digest` straight from its Arrow buffers."""
    _, offsets, data = array.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    digest.update((bounds - bounds[0]).tobytes())
    digest.update(memoryview(data)[bounds[0] : bounds[-1]] if len(array) else b"")


def eval_set(outcomes: Outcomes) -> EvalSet:
    digest = hashlib.blake2b(digest_size=8)
    _digest_strings(outcomes.sample_id, digest)
    _digest_strings(outcomes.true_label, digest)
    return EvalSet(digest.hexdigest(), outcomes.correct)


@lru_cache(maxsize=1 << 14)
def _cached_eval_set(run_dir: str, signature: tuple[int, int]) -> EvalSet | None:
    try:
        return eval_set(read_outcomes(run_dir))
    except (OSError, ValueError):  # unreadable or not comparable: such a run gets no tier
        return None


def run_eval_set(run_dir: str | None) -> EvalSet | None:
    """The run folder's EvalSet, memoised on predictions.parquet's (mtime, size); None when it cannot be read."""
    if not run_dir:
        return None
    try:
        stat = (Path(run_dir) / PREDICTIONS).stat()
    except OSError:
        return None
    return _cached_eval_set(str(run_dir), (stat.st_mtime_ns, stat.st_size))


def tier_runs(correct: np.ndarray) -> np.ndarray:
    """Tiers (1 = best) of runs evaluated on the same samples; `correct` is runs × samples (bool).

    The best run by top-1 is compared with every other run (exact McNemar, Holm-corrected over those
    comparisons); those that cannot be told apart from it at ALPHA join its tier. The rest are tiered the same way.
    """
    correct = np.asarray(correct, dtype=bool)
    tiers = np.zeros(len(correct), dtype=np.int64)
    scores = correct.sum(axis=1)
    remaining = np.argsort(-scores, kind="stable")  # best first; ties keep the input order
    tier = 0
    while len(remaining):
        tier += 1
        best, others = remaining[0], remaining[1:]
        only_best = (correct[best] & ~correct[others]).sum(axis=1)
        only_other = (~correct[best] & correct[others]).sum(axis=1)
        tied = holm(mcnemar_p(only_best, only_other)) >= ALPHA if len(others) else np.array([], dtype=bool)
        tiers[best] = tier
        tiers[others[tied]] = tier
        remaining = others[~tied]
    return tiers


def tiers(runs: Mapping[str, tuple[str, EvalSet | None]]) -> dict[str, int | None]:
    """run id -> tier, for runs given as run id -> (dataset, EvalSet or None); tiered within each dataset and
    evaluation set. A run without readable predictions gets None (no tier)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for run_id, (dataset, evaluated) in runs.items():
        if evaluated is not None:
            groups.setdefault((dataset, evaluated.key), []).append(run_id)
    result: dict[str, int | None] = dict.fromkeys(runs)
    for members in groups.values():
        matrix = np.stack([runs[run_id][1].correct for run_id in members])
        result.update(zip(members, tier_runs(matrix).tolist(), strict=True))
    return result


# --- seeds -----------------------------------------------------------------------------------------------------

# train_config.yaml keys that name or route a run but do not change what it learns: runs differing only in these
# and the seed are repeats of one configuration.
BOOKKEEPING_KEYS = frozenset({"seed", "seeds", "name", "output", "resume", "record", "db", "push_to_hub", "private"})


def seed_group_key(train_config: Mapping | None) -> str | None:
    """A key shared by runs whose training configurations differ only in the seed (and bookkeeping)."""
    if not train_config:
        return None
    kept = {key: value for key, value in train_config.items() if key not in BOOKKEEPING_KEYS}
    return hashlib.blake2b(repr(sorted(kept.items())).encode("utf-8"), digest_size=6).hexdigest()


@dataclass(frozen=True)
class SeedSummary:
    runs: int
    mean: float
    std: float  # sample standard deviation (ddof = 1)

    def __str__(self) -> str:
        return f"{PERCENT.number(self.mean)} ± {self.std * 100:.1f} ({self.runs} seeds)"  # ± in points, as top1_ci
