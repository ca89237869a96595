"""Plotly figures of the panels, built on the server from the queries' rows.

A page embeds each figure as JSON and ``plotly.min.js`` (served from the plotly package itself, so the
dashboard works offline) draws it: no Node build, no JavaScript of our own beyond the call that draws.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots
from sqlalchemy import Row

PALETTE = qualitative.Plotly  # one colour per assistant model, the same in every subplot
LEVEL_COLOURS = ("#d7301f", "#fc8d59", "#bdbdbd", "#91cf60", "#1a9850")  # rejection ... satisfaction
LAYOUT = {"template": "plotly_white", "margin": {"l": 50, "r": 20, "t": 40, "b": 40}, "height": 420,
          "legend": {"orientation": "h", "y": -0.15}}


def to_json(figure: go.Figure) -> str:
    """The figure as JSON that is safe inside a ``<script>`` element (model names are user data)."""
    return figure.to_json().replace("</", "<\\/")


def satisfaction(days: Sequence[Row], promotions: Sequence[Row]) -> go.Figure:
    """Mean level, dissatisfied and satisfied shares, and counts per day and model, over shared days; a dashed
    line at each promotion of a reward model version."""
    figure = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                           subplot_titles=("mean level", "share of levels 1-2 (solid) and 4-5 (dotted)", "labels"))
    by_model: dict[str, list[Row]] = defaultdict(list)
    for row in days:
        by_model[row.model].append(row)
    for (model, rows), color in zip(by_model.items(), itertools.cycle(PALETTE), strict=False):
        x, line = [row.day for row in rows], {"color": color}
        figure.add_scatter(x=x, y=[float(r.mean_level) for r in rows], name=model, legendgroup=model, line=line,
                           row=1, col=1)
        figure.add_scatter(x=x, y=[r.low / r.n for r in rows], name=f"{model} 1-2", legendgroup=model, line=line,
                           showlegend=False, row=2, col=1)
        figure.add_scatter(x=x, y=[r.high / r.n for r in rows], name=f"{model} 4-5", legendgroup=model,
                           showlegend=False, line={**line, "dash": "dot"}, row=2, col=1)
        figure.add_bar(x=x, y=[r.n for r in rows], name=f"{model} labels", legendgroup=model, showlegend=False,
                       marker_color=color, row=3, col=1)
    for promotion in promotions:
        figure.add_vline(x=promotion.created_at.timestamp() * 1000, line_dash="dash", line_color="grey",
                         annotation_text=f"v{promotion.version_id}", row="all", col=1)
    figure.update_yaxes(range=[1, 5], row=1, col=1)
    figure.update_yaxes(range=[0, 1], tickformat=".0%", row=2, col=1)
    return figure.update_layout(LAYOUT, height=640, barmode="stack")


def label_mix(rows: Sequence[Row]) -> go.Figure:
    """Stacked levels per labeler and labeler version, as shares of that labeler's labels."""
    totals: dict[str, int] = defaultdict(int)
    for row in rows:
        totals[_labeler(row)] += row.n
    figure = go.Figure()
    for level in range(1, 6):
        mine = [row for row in rows if row.level == level]
        figure.add_bar(x=[_labeler(r) for r in mine], y=[r.n / totals[_labeler(r)] for r in mine],
                       customdata=[r.n for r in mine], name=f"level {level}", marker_color=LEVEL_COLOURS[level - 1],
                       hovertemplate="%{y:.1%} (%{customdata} labels)")
    return figure.update_layout(LAYOUT, barmode="stack", yaxis={"tickformat": ".0%"})


def _labeler(row: Row) -> str:
    return f"{row.labeler_id} {row.labeler_version}"


def reasons(rows: Sequence[Row]) -> go.Figure:
    """Share of all labels that a filter left out or mining relabelled, by reason."""
    figure = go.Figure()
    for kind in ("filtered", "mined"):
        mine = [row for row in rows if row.kind == kind]
        figure.add_bar(y=[r.reason for r in mine], x=[r.n / r.total for r in mine], orientation="h", name=kind,
                       customdata=[r.n for r in mine], hovertemplate="%{x:.1%} (%{customdata} labels)")
    return figure.update_layout(LAYOUT, xaxis={"tickformat": ".0%"}, yaxis={"automargin": True},
                                height=bar_height(len(rows)))


def bar_height(bars: int) -> int:
    """Horizontal bars a readable thickness however many there are."""
    return 140 + 40 * bars


def reliability(versions: Sequence[Row]) -> go.Figure:
    """Accuracy against confidence of each version's most likely level (its reliability table); the
    diagonal is perfect calibration, marker area the items in a bin."""
    figure = go.Figure()
    figure.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect", line={"dash": "dot", "color": "grey"})
    for version in versions:
        table: list[dict[str, Any]] = (version.metrics or {}).get("reliability") or []
        if table:
            figure.add_scatter(x=[b["confidence"] for b in table], y=[b["accuracy"] for b in table],
                               mode="lines+markers", name=f"v{version.id} ({version.status})",
                               marker={"size": [max(6, min(30, b["count"] ** 0.5)) for b in table]})
    return figure.update_layout(LAYOUT, xaxis={"title": "confidence", "range": [0, 1]},
                                yaxis={"title": "accuracy", "range": [0, 1]})


def dead_letters(rows: Sequence[Row]) -> go.Figure:
    figure = go.Figure(go.Bar(y=[row.reason[:80] for row in rows], x=[row.n for row in rows], orientation="h"))
    return figure.update_layout(LAYOUT, yaxis={"automargin": True}, xaxis={"title": "records"},
                                height=bar_height(len(rows)))
