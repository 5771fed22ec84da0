"""Plotly figures of tracedb frames.

Plotly renders a subset of HTML in labels and hover text, and trace content is untrusted,
so every string that comes from a trace goes through ``html.escape`` first.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from dashboard import frames

# Above this many steps the timeline is drawn with WebGL line segments instead of SVG bars.
WEBGL_ABOVE = 2000
# Resolution of a big timeline: steps of a row closer than span / this are drawn as one bar.
MERGE_RESOLUTION = 3000
STATUS_COLOURS = {
    "ok": "#2ca02c",
    "completed": "#2ca02c",
    "error": "#d62728",
    "failed": "#d62728",
    "running": "#1f77b4",
    "interrupted": "#ff7f0e",
    "(none)": "#9e9e9e",
}


def safe(values: pd.Series) -> pd.Series:
    """Strings escaped for Plotly's label renderer; missing values become ``(none)``."""
    text = values.fillna("(none)").astype(str)
    return text.map({v: html.escape(v) for v in text.unique()})


def colour_map(values: list[str], by: str) -> dict[str, str]:
    palette = qualitative.Plotly
    if by == "status":
        spare = iter(palette[4:] + palette[:4])
        return {v: STATUS_COLOURS.get(html.unescape(v).lower()) or next(spare, "#7f7f7f") for v in values}
    return {v: palette[i % len(palette)] for i, v in enumerate(values)}


def _hover(tl: pd.DataFrame) -> np.ndarray:
    ms = tl["duration_ms"]
    duration = (ms.round(1).astype(str) + " ms").where(ms.notna(), "no duration")
    return (
        "#"
        + tl["seq"].astype(str)
        + " "
        + safe(tl["name"])
        + "<br>"
        + safe(tl["lane"])
        + " · "
        + safe(tl["kind"])
        + " · "
        + safe(tl["status"])
        + " · "
        + duration
    ).to_numpy()


def timeline_figure(
    tl: pd.DataFrame, axis: str, colour_by: str = "kind", webgl_above: int = WEBGL_ABOVE
) -> go.Figure:
    """Steps as horizontal bars on one row per node, coloured by ``colour_by``.

    ``tl`` comes from ``frames.timeline_frame``; ``axis`` is ``"time"`` (seconds since the
    first step) or ``"step"`` (sequence order). Up to ``webgl_above`` steps, one SVG bar per
    step. Above, WebGL line segments on numbered rows: steps of a row closer than
    1/``MERGE_RESOLUTION`` of the span are joined into one bar (they would share a pixel),
    and hovering a bar tells how many steps it holds. Numeric arrays reach the browser as
    compact binary.
    """
    fig = go.Figure()
    if tl.empty:
        return fig
    lanes = list(dict.fromkeys(safe(tl["lane"])))
    span = float(tl["end"].max() - tl["start"].min()) or 1.0
    if len(tl) > webgl_above:
        bars = frames.merge_steps(tl, colour_by, span / MERGE_RESOLUTION)
        bars["lane"] = safe(bars["lane"])
        bars["value"] = safe(bars["value"])
        row = {name: len(lanes) - 1 - i for i, name in enumerate(lanes)}
        colours = colour_map(sorted(bars["value"].unique()), colour_by)
        # the most common value first, so that rarer ones (errors) are drawn on top
        for value in bars.groupby("value")["steps"].sum().sort_values(ascending=False, kind="stable").index:
            part = bars[bars["value"] == value]
            n = len(part)
            gap = np.full(n, np.nan)
            start = part["start"].to_numpy()
            end = np.maximum(part["end"].to_numpy(), start + span * 0.001)
            y = part["lane"].map(row).to_numpy(dtype="float64")
            text = (
                part["steps"].astype(str)
                + " steps · #"
                + part["first_seq"].astype(str)
                + "–#"
                + part["last_seq"].astype(str)
                + "<br>"
                + part["lane"]
                + " · "
                + str(value)
                + " · busy "
                + (part["busy_ms"] / 1000).round(2).astype(str)
                + " s"
            ).to_numpy()
            fig.add_trace(
                go.Scattergl(
                    x=np.round(np.column_stack([start, end, gap]).ravel(), 4),
                    y=np.column_stack([y, y, gap]).ravel(),
                    mode="lines",
                    name=str(value),
                    hovertext=np.column_stack([text, text, np.full(n, "")]).ravel(),
                    hoverinfo="text",
                    line={"width": 12, "color": colours[value]},
                )
            )
        fig.update_yaxes(
            tickmode="array",
            tickvals=list(range(len(lanes))),
            ticktext=lanes[::-1],
            range=[-0.6, len(lanes) - 0.4],
            zeroline=False,
            showgrid=False,
        )
    else:
        lane = safe(tl["lane"])
        colour = safe(tl[colour_by])
        colours = colour_map(sorted(colour.unique()), colour_by)
        start = tl["start"].to_numpy(dtype="float64")
        width = np.maximum(tl["end"].to_numpy(dtype="float64") - start, span * 0.002)
        hover = _hover(tl)
        for value in colour.value_counts(sort=True).index:
            mask = (colour == value).to_numpy()
            fig.add_trace(
                go.Bar(
                    y=lane[mask],
                    x=width[mask],
                    base=start[mask],
                    orientation="h",
                    name=value,
                    hovertext=hover[mask],
                    hoverinfo="text",
                    marker={"color": colours[value], "line": {"width": 0}},
                )
            )
        fig.update_yaxes(categoryorder="array", categoryarray=lanes[::-1])
    fig.update_layout(
        barmode="overlay",
        bargap=0.25,
        height=140 + 42 * len(lanes),
        legend_title_text=colour_by,
        margin={"l": 10, "r": 10, "t": 30, "b": 40},
        hovermode="closest",
        xaxis_title="seconds since the first step" if axis == "time" else "step (no timings recorded)",
    )
    fig.update_yaxes(title=None)
    return fig


def _layout(fig: go.Figure, height: int = 320, **kw: object) -> go.Figure:
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 40, "b": 40}, **kw)
    return fig


def traces_per_day_figure(per_day: pd.DataFrame) -> go.Figure:
    """Stacked bars: traces created per day, by status."""
    fig = go.Figure()
    for status in sorted(per_day["status"].unique()) if not per_day.empty else []:
        part = per_day[per_day["status"] == status]
        fig.add_trace(
            go.Bar(
                x=part["day"],
                y=part["traces"],
                name=html.escape(status),
                marker_color=STATUS_COLOURS.get(status, "#7f7f7f"),
            )
        )
    return _layout(
        fig,
        barmode="stack",
        title="Traces per day",
        legend_title_text="status",
        xaxis_title=None,
        yaxis_title="traces",
    )


def error_rate_figure(daily: pd.DataFrame) -> go.Figure:
    """Share of each day's traces that failed or recorded an error step."""
    fig = go.Figure(
        go.Scatter(
            x=daily["day"],
            y=daily["error_rate"],
            mode="lines+markers",
            line={"color": STATUS_COLOURS["error"]},
            hovertext=[
                f"{w} of {t} traces" for w, t in zip(daily["with_errors"], daily["traces"], strict=True)
            ],
            hoverinfo="x+y+text",
        )
    )
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    return _layout(fig, title="Error rate per day (traces failed or with an error step)", xaxis_title=None)


def node_entries_figure(per_node: pd.DataFrame) -> go.Figure:
    """Entries per node, errors stacked in red."""
    names = safe(per_node["node"]) if not per_node.empty else []
    fig = go.Figure(
        [
            go.Bar(
                y=names,
                x=per_node["entries"] - per_node["errors"],
                orientation="h",
                name="ok",
                marker_color="#4c78a8",
            ),
            go.Bar(
                y=names,
                x=per_node["errors"],
                orientation="h",
                name="error",
                marker_color=STATUS_COLOURS["error"],
            ),
        ]
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, height=140 + 30 * max(len(per_node), 1), barmode="stack", title="Entries per node")


def node_duration_figure(per_node: pd.DataFrame) -> go.Figure:
    """p50 and p95 step duration per node."""
    names = safe(per_node["node"]) if not per_node.empty else []
    fig = go.Figure(
        [
            go.Bar(y=names, x=per_node["p50_ms"], orientation="h", name="p50", marker_color="#72b7b2"),
            go.Bar(y=names, x=per_node["p95_ms"], orientation="h", name="p95", marker_color="#f58518"),
        ]
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(
        fig,
        height=140 + 30 * max(len(per_node), 1),
        barmode="group",
        title="Step duration per node (ms)",
        xaxis_title="ms",
    )


def users_figure(per_user: pd.DataFrame) -> go.Figure:
    """Traces per user, failed ones in red."""
    names = safe(per_user["user_id"]) if not per_user.empty else []
    fig = go.Figure(
        [
            go.Bar(
                y=names,
                x=per_user["traces"] - per_user["failed"],
                orientation="h",
                name="not failed",
                marker_color="#4c78a8",
            ),
            go.Bar(
                y=names,
                x=per_user["failed"],
                orientation="h",
                name="failed",
                marker_color=STATUS_COLOURS["failed"],
            ),
        ]
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, height=140 + 30 * max(len(per_user), 1), barmode="stack", title="Busiest users")
