"""Plotly figures of the leaderboard dashboard; each takes plain frames/arrays from apps/dashboard_data.py."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from apps.dashboard_data import DISPLAY_COLUMNS, pareto_front
from runfolder.metrics import READABLE_CLASSES, Style

PALETTE = px.colors.qualitative.Plotly
HOVER = ["run_id", "model", "pretrained_tag", "strategy", "dataset"]
LABELLED_POINTS = 30  # up to this many runs every point carries its model name; beyond, only the frontier's do
# A label's box as a fraction of the plot area, per character and in height (a 700 x 400 px plot, 11 px text).
LABEL_CHAR_WIDTH, LABEL_HEIGHT = 0.0095, 0.045
LABEL_POSITIONS = ("top center", "bottom center")  # tried in turn; a label with room at neither is left to hover
SCORE_AXIS = (0.0, 1.08)  # the most a score axis spans (fractions, with room for a 100% point's label)


def score_axis(scores: pd.Series) -> tuple[float, float]:
    """The scores' own span with a quarter of it (at least 2.5 points) spare on each side, within SCORE_AXIS: runs
    of one task crowd into a few points, which the whole 0-100% scale would draw as one clump."""
    low, high = float(scores.min()), float(scores.max())
    spare = max(high - low, 0.1) / 4
    return max(SCORE_AXIS[0], low - spare), min(SCORE_AXIS[1], high + spare)


def axis_format(column: str) -> str:
    """d3 format of a metric axis: percentages as 94%, other scores with their spec's decimals."""
    spec = DISPLAY_COLUMNS[column]
    return ".0%" if spec.format.style is Style.PERCENT else f".{spec.format.digits}f"


def log_ticks(values: pd.Series) -> dict:
    """Tick values 1-2-5 per decade over `values`, each labelled in full.

    Plotly's own log ticks label the 2 and 5 between decades with a bare digit ("2", "5"): stray labels that read
    as values. When the values span less than one 1-2-5 step, plotly's automatic ticks stay.
    """
    low, high = float(values.min()), float(values.max())
    if not low > 0:
        return {}
    ticks = [m * 10.0**e for e in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)
             for m in (1, 2, 5) if low / 2 <= m * 10.0**e <= high * 2]  # fmt: skip
    if len(ticks) < 2:
        return {}
    return {"tickmode": "array", "tickvals": ticks, "ticktext": [f"{t:,.12g}" for t in ticks]}


def label_positions(x: pd.Series, y: pd.Series, texts: pd.Series,
                    axis: tuple[float, float] = SCORE_AXIS) -> pd.Series:
    """Where each point's label goes (a LABEL_POSITIONS entry), or None where it would cover another label.

    Plotly draws text labels where they are told, overlapping or not: two runs of one model at one cost (a linear
    probe and a full fine-tune) would print their names on top of each other. Greedy, highest score first, in
    plot-area fractions of the log cost axis and of the score `axis`."""
    log_x = np.log10(x)
    px_ = (log_x - log_x.min()) / max(log_x.max() - log_x.min(), 1e-12)
    py_ = (y - axis[0]) / (axis[1] - axis[0])
    placed: list[tuple[float, float, float, float]] = []  # boxes: left, right, bottom, top
    positions: dict = {}
    for i in py_.sort_values(ascending=False).index:
        half_width = LABEL_CHAR_WIDTH * len(str(texts[i])) / 2
        for position in LABEL_POSITIONS:
            bottom = py_[i] if position.startswith("top") else py_[i] - LABEL_HEIGHT
            box = (px_[i] - half_width, px_[i] + half_width, bottom, bottom + LABEL_HEIGHT)
            if not any(box[0] < b[1] and b[0] < box[1] and box[2] < b[3] and b[2] < box[3] for b in placed):
                placed.append(box)
                positions[i] = position
                break
    return pd.Series([positions.get(i) for i in x.index], index=x.index, dtype=object)


def tradeoff(table: pd.DataFrame, cost: str, metric: str) -> go.Figure:
    """A score against a cost (log axis) per run, coloured by family, with the Pareto frontier as a step line.

    Points are labelled with short model names (all of them up to LABELLED_POINTS runs, else the frontier's)."""
    points = table.dropna(subset=[cost, metric])
    cost_label, metric_label = DISPLAY_COLUMNS[cost].heading, DISPLAY_COLUMNS[metric].heading
    front = pareto_front(points, cost, metric)
    figure = px.scatter(
        points,
        x=cost,
        y=metric,
        color="family",
        symbol="strategy",
        hover_data=HOVER,
        log_x=True,
        labels={cost: cost_label, metric: metric_label, "model_short": "model"},
        title=f"{metric_label} vs {cost_label}",
    )
    axis = score_axis(points[metric]) if len(points) else SCORE_AXIS
    if len(points) <= LABELLED_POINTS:
        label_points(figure, points, label_positions(points[cost], points[metric], points["model_short"], axis))
    figure.add_trace(
        go.Scatter(
            x=front[cost],
            y=front[metric],
            mode="lines+markers" if len(points) <= LABELLED_POINTS else "lines+markers+text",
            line={"shape": "hv", "color": "black", "dash": "dot"},
            marker={"size": 12, "symbol": "circle-open", "color": "black"},
            name="Pareto frontier",
            text=front["model_short"],
            textposition="bottom right",
            customdata=front["run_id"],
            hovertemplate="%{customdata}<extra>Pareto frontier</extra>",
        )
    )
    figure.update_xaxes(**log_ticks(points[cost]))
    figure.update_yaxes(tickformat=axis_format(metric), range=axis)
    return figure


def label_points(figure: go.Figure, points: pd.DataFrame, positions: pd.Series) -> None:
    """Give each scatter trace's points their labels at `positions` (px.scatter splits points into one trace per
    family and strategy; each trace's customdata row starts with the run id)."""
    by_run = dict(zip(points["run_id"], zip(points["model_short"], positions, strict=True), strict=True))
    for trace in figure.data:
        labels = [by_run[row[0]] for row in trace.customdata]
        trace.update(mode="markers+text", textfont_size=11, text=[text if where else "" for text, where in labels],
                     textposition=[where or "top center" for _, where in labels])


def top1_bars(table: pd.DataFrame, metric: str = "top1") -> go.Figure:
    """Grouped bars: for each dataset, the best run's `metric` of every backbone."""
    label = DISPLAY_COLUMNS[metric].heading
    figure = px.bar(
        table,
        x="dataset",
        y=metric,
        color="model",
        barmode="group",
        hover_data=["run_id", "pretrained_tag"],
        labels={metric: label},
        title=f"Best {label} per dataset and backbone",
    )
    figure.update_yaxes(tickformat=axis_format(metric), range=[0, 1])
    return figure


def confusion_heatmap(matrix: np.ndarray, labels: list[str], normalised: bool) -> go.Figure:
    """Counts or per-class shares; above READABLE_CLASSES classes a plain colour map (no cell text or tick labels,
    which would overlap into a block) whose cells name their classes on hover."""
    readable = len(labels) <= READABLE_CLASSES
    figure = px.imshow(
        matrix,
        x=labels,
        y=labels,
        color_continuous_scale="Blues",
        text_auto=(".0%" if normalised else ".0f") if readable else False,
        labels={"x": "predicted", "y": "true", "color": "share of true class" if normalised else "images"},
        title="Confusion matrix" + (" (normalised per true class)" if normalised else " (counts)"),
        aspect="auto",
    )
    figure.update_xaxes(type="category", showticklabels=readable)
    figure.update_yaxes(type="category", showticklabels=readable)
    if not readable:
        figure.update_layout(height=700)
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


def training_curves(
    histories: Mapping[str, pd.DataFrame], columns: Mapping[str, str], title: str, tickformat: str = ""
) -> go.Figure:
    """One line per (run, column): a colour per run, a dash style per column (e.g. solid train, dotted val).

    Epochs are whole numbers on the axis. A curve of one epoch is a single marker: its axis is set around the value
    (plotly's default for one point is −1…1, where a learning rate of 0.001 is a dot on the zero line)."""
    dashes = ["solid", "dot", "dash", "dashdot"]
    figure = go.Figure()
    for index, (run_id, history) in enumerate(histories.items()):
        for dash, (column, name) in zip(dashes, columns.items(), strict=False):
            if column in history and history[column].notna().any():  # no top-5 line (or legend) for 2 classes
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
    epochs = pd.concat([history["epoch"] for history in histories.values()])
    first, last = (int(epochs.min()), int(epochs.max())) if len(epochs) else (1, 1)
    step = max(1, math.ceil((last - first) / 10))
    figure.update_xaxes(tickmode="linear", tick0=0, dtick=step, range=[first - 0.5, last + 0.5])
    values = pd.concat([h[c] for h in histories.values() for c in columns if c in h]).dropna()
    if len(values) and values.min() == values.max():
        value = float(values.min())
        margin = abs(value) / 2 or 1.0
        figure.update_yaxes(range=[value - margin, value + margin])
    figure.update_yaxes(tickformat=tickformat)
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
