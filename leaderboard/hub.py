"""Read Backbone Arena model cards from the Hugging Face Hub into leaderboard rows.

The card's model-index gives the headline figures (and its name is the run id); the repo's metrics.json,
uploaded with every published run, gives the rest of the row.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
from huggingface_hub import HfApi, ModelCard, constants, hf_hub_download

from leaderboard.store import IngestReport, Store, row_from_metrics
from model_cards.card import metrics_from_eval_results
from model_cards.datasets import dataset_key
from runfolder import METRICS, MetricsError, validate_metrics


class HubSyncError(RuntimeError):
    """The Hub cannot be read (offline, unreachable, unknown author), with the reason."""


def row_from_card(repo_id: str, card: ModelCard, metrics: dict[str, Any], created: str) -> dict[str, Any]:
    """A store row from a Hub card and its metrics.json; the card's model-index figures win where both exist."""
    results = card.data.eval_results or []
    if not results:
        raise MetricsError(f"{repo_id}: the model card has no model-index results")
    first = results[0]
    from_card = {
        "dataset": dataset_key(first.dataset_type, first.dataset_config),
        "eval_split": first.dataset_split,
        **metrics_from_eval_results(results),
    }
    merged = validate_metrics(metrics | from_card)
    return row_from_metrics(card.data.model_name or repo_id.split("/")[-1], merged, created, hub_repo=repo_id)


def _read_repo(api: HfApi, repo_id: str) -> tuple[ModelCard, dict[str, Any]]:
    card = ModelCard.load(repo_id, token=api.token)
    metrics_path = hf_hub_download(repo_id, METRICS, token=api.token)
    return card, json.loads(Path(metrics_path).read_text(encoding="utf-8"))


def hub_rows(author: str, skipped: dict[str, str], token: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(repo id, row) for each timm model of `author`; repos that cannot be read go to `skipped` with the reason."""
    if constants.is_offline_mode():
        raise HubSyncError("cannot sync from the Hub: offline mode is enabled (HF_HUB_OFFLINE is set)")
    api = HfApi(token=token)
    try:
        models = list(api.list_models(author=author, filter="timm"))
    except (httpx2.HTTPError, OSError) as error:
        raise HubSyncError(f"cannot list the models of {author!r} on {constants.ENDPOINT}: {error}") from error
    for info in models:
        created = info.created_at.isoformat(timespec="seconds") if info.created_at else ""
        try:
            card, metrics = _read_repo(api, info.id)
            yield info.id, row_from_card(info.id, card, metrics, created)
        except (MetricsError, ValueError, httpx2.HTTPError, OSError) as error:
            skipped[info.id] = str(error)


def sync(store: Store, author: str, token: str | None = None) -> IngestReport:
    """Read the model cards of `author`'s timm models on the Hub into `store`."""
    report = IngestReport()
    for repo_id, row in hub_rows(author, report.skipped, token):
        store.upsert(row)
        report.recorded.append(repo_id)
    return report
