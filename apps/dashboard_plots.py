"""Plotly figures of the leaderboard dashboard; each takes plain frames/arrays from apps/dashboard_data.py."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

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


def reliability_diagram(curves: Mapping[str, pd.DataFrame]) -> go.Figure:
    """Accuracy against mean confidence per confidence bin (above; on the diagonal = calibrated), and each
    bin's number of samples (below), one colour per curve (e.g. before and after temperature scaling)."""
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.06)
    figure.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"color": "grey", "dash": "dash"},
                   name="perfect calibration"),
        row=1, col=1,
    )  # fmt: skip
    for index, (name, bins) in enumerate(curves.items()):
        colour = PALETTE[index % len(PALETTE)]
        figure.add_trace(
            go.Scatter(
                x=bins["confidence"], y=bins["accuracy"], mode="lines+markers", name=name, legendgroup=name,
                line={"color": colour}, customdata=bins[["count", "lower", "upper"]],
                hovertemplate="confidence %{customdata[1]:.2f}–%{customdata[2]:.2f}: mean %{x:.3f}, "
                              "accuracy %{y:.3f}, %{customdata[0]} samples",
            ),
            row=1, col=1,
        )  # fmt: skip
        figure.add_trace(
            go.Bar(x=(bins["lower"] + bins["upper"]) / 2, y=bins["count"], width=bins["upper"] - bins["lower"],
                   name=f"{name} · samples", legendgroup=name, showlegend=False, marker={"color": colour},
                   opacity=0.6),
            row=2, col=1,
        )  # fmt: skip
    figure.update_layout(title="Reliability diagram (top-1 confidence vs accuracy)", barmode="overlay")
    figure.update_xaxes(range=[0, 1], row=1, col=1)
    figure.update_xaxes(range=[0, 1], title_text="confidence", row=2, col=1)
    figure.update_yaxes(range=[0, 1.03], title_text="accuracy", row=1, col=1)
    figure.update_yaxes(title_text="samples", row=2, col=1)
    return figure
