"""Plotly figures of the leaderboard dashboard; each takes plain frames/arrays from apps/dashboard_data.py."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from apps.dashboard_data import COST_LABELS, METRIC_LABELS, pareto_front

PALETTE = px.colors.qualitative.Plotly
HOVER = ["run_id", "model", "pretrained_tag", "strategy", "dataset"]


def tradeoff(table: pd.DataFrame, cost: str, metric: str) -> go.Figure:
    """Accuracy against a cost (log axis) per run, coloured by family, with the Pareto frontier as a step line."""
    points = table.dropna(subset=[cost, metric])
    figure = px.scatter(
        points,
        x=cost,
        y=metric,
        color="family",
        symbol="strategy",
        hover_data=HOVER,
        log_x=True,
        labels={cost: COST_LABELS[cost], metric: METRIC_LABELS[metric]},
        title=f"{METRIC_LABELS[metric]} vs {COST_LABELS[cost]}",
    )
    front = pareto_front(points, cost, metric)
    figure.add_trace(
        go.Scatter(
            x=front[cost],
            y=front[metric],
            mode="lines+markers",
            line={"shape": "hv", "color": "black", "dash": "dot"},
            marker={"size": 12, "symbol": "circle-open", "color": "black"},
            name="Pareto frontier",
            text=front["run_id"],
            hovertemplate="%{text}<extra>Pareto frontier</extra>",
        )
    )
    figure.update_yaxes(
        tickformat=".0%" if metric != "auroc" else ".2f", autorangeoptions={"minallowed": 0, "maxallowed": 1}
    )
    return figure


def top1_bars(table: pd.DataFrame, metric: str = "top1") -> go.Figure:
    """Grouped bars: for each dataset, the best run's `metric` of every backbone."""
    figure = px.bar(
        table,
        x="dataset",
        y=metric,
        color="model",
        barmode="group",
        hover_data=["run_id", "pretrained_tag"],
        labels={metric: METRIC_LABELS[metric]},
        title=f"Best {METRIC_LABELS[metric]} per dataset and backbone",
    )
    figure.update_yaxes(tickformat=".0%", range=[0, 1])
    return figure


def confusion_heatmap(matrix: np.ndarray, labels: list[str], normalised: bool) -> go.Figure:
    figure = px.imshow(
        matrix,
        x=labels,
        y=labels,
        color_continuous_scale="Blues",
        text_auto=".2f" if normalised else ".0f",
        labels={"x": "predicted", "y": "true", "color": "fraction of true class" if normalised else "images"},
        title="Confusion matrix" + (" (normalised per true class)" if normalised else " (counts)"),
        aspect="auto",
    )
    figure.update_xaxes(type="category")
    figure.update_yaxes(type="category")
    return figure


def confusion_difference(diff: np.ndarray, labels: list[str]) -> go.Figure:
    """B − A of normalised confusion matrices: red where B puts more of a class, blue where A does."""
    limit = max(float(np.abs(diff).max()), 1e-9)
    figure = px.imshow(
        diff,
        x=labels,
        y=labels,
        color_continuous_scale="RdBu_r",
        zmin=-limit,
        zmax=limit,
        text_auto=".2f",
        labels={"x": "predicted", "y": "true", "color": "B − A"},
        aspect="auto",
        title="Normalised confusion matrix, B − A (diagonal > 0: B recalls the class better)",
    )
    figure.update_xaxes(type="category")
    figure.update_yaxes(type="category")
    return figure


def per_class_bars(per_class: pd.DataFrame) -> go.Figure:
    long = per_class.melt(id_vars=["label", "support"], value_vars=["precision", "recall", "f1"], var_name="score")
    figure = px.bar(
        long,
        x="label",
        y="value",
        color="score",
        barmode="group",
        hover_data=["support"],
        labels={"label": "class", "value": ""},
        title="Per-class precision, recall and F1",
    )
    figure.update_xaxes(type="category")
    figure.update_yaxes(range=[0, 1])
    return figure


def training_curves(histories: Mapping[str, pd.DataFrame], columns: Mapping[str, str], title: str) -> go.Figure:
    """One line per (run, column): a colour per run, a dash style per column (e.g. solid train, dotted val)."""
    dashes = ["solid", "dot", "dash", "dashdot"]
    figure = go.Figure()
    for index, (run_id, history) in enumerate(histories.items()):
        for dash, (column, name) in zip(dashes, columns.items(), strict=False):
            if column in history:
                figure.add_trace(
                    go.Scatter(
                        x=history["epoch"],
                        y=history[column],
                        mode="lines+markers",
                        name=f"{run_id} · {name}",
                        legendgroup=run_id,
                        line={"color": PALETTE[index % len(PALETTE)], "dash": dash},
                    )
                )
    figure.update_layout(title=title, xaxis_title="epoch", hovermode="x unified")
    return figure
