"""Plotly figures of the dashboard's frames.

Plotly renders a subset of HTML in labels and hover text, and trace content is untrusted,
so every string that comes from a trace goes through :func:`plain` first. Colours come
from :mod:`dashboard.colours`, so a status, a kind or a node looks the same everywhere.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard import colours, frames, human

# Above this many steps the timeline is drawn with WebGL line segments instead of SVG bars.
WEBGL_ABOVE = 2000
# Resolution of a big timeline: steps of a row closer than span / this are drawn as one bar.
MERGE_RESOLUTION = 3000
STATUS_COLOURS = colours.STATUS
BAND_FILL = "rgba(86, 180, 233, 0.08)"


def plain(text: str) -> str:
    """``text`` as Plotly's label renderer shows it as typed: ``&``, ``<`` and ``>`` escaped,
    so no tag (``<a href>``, ``<img>``) is read from it. Quotes stay as they are: Plotly
    decodes only a few named entities (``&amp;``, ``&lt;``, ``&gt;``), so an escaped quote
    would show as ``&quot;``."""
    return html.escape(text, quote=False)


def safe(values: pd.Series) -> pd.Series:
    """Strings escaped for Plotly's label renderer; missing values become ``(none)``."""
    text = values.fillna("(none)").astype(str)
    return text.map({v: plain(v) for v in text.unique()})


def colour_map(values: list[str], by: str) -> dict[str, str]:
    """The colour of each (escaped) value, the same in every trace."""
    return {v: colours.colour_of(html.unescape(v), by) for v in values}


def _hover(tl: pd.DataFrame) -> np.ndarray:
    took = tl["duration_ms"].map(human.duration)
    at = (tl["at"] * 1000).map(human.duration)
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
        + "<br>took "
        + took
        + " · at "
        + at
        + " · turn "
        + tl["turn"].astype(str)
    ).to_numpy()


OPEN_NAMES = {"running": "running now", "abandoned": "running when its writer went silent"}


def _open_bars(fig: go.Figure, tl: pd.DataFrame, y: pd.Series | np.ndarray, span: float) -> None:
    """Steps that have started and not ended, drawn apart from the others: hatched,
    outlined, reaching to now (or to when the writer was last heard from)."""
    for status in ("running", "abandoned"):
        mask = (tl["status"].astype(str) == status).to_numpy()
        if not mask.any():
            continue
        part = tl[mask]
        start = part["start"].to_numpy(dtype="float64")
        width = np.maximum(part["end"].to_numpy(dtype="float64") - start, span * 0.004)
        hover = (
            safe(part["name"])
            + "<br>"
            + safe(part["lane"])
            + " · "
            + status
            + "<br>"
            + ("running for " if status == "running" else "had run for ")
            + part["open_ms"].map(human.duration)
            + " · from "
            + (part["at"] * 1000).map(human.duration)
        ).to_numpy()
        colour = colours.STATUS[status]
        fig.add_trace(
            go.Bar(
                y=np.asarray(y)[mask],
                x=width,
                base=start,
                orientation="h",
                name=OPEN_NAMES[status],
                hovertext=hover,
                hoverinfo="text",
                marker={
                    "color": "rgba(255,255,255,0)",
                    "line": {"width": 2, "color": colour},
                    "pattern": {"shape": "/", "fgcolor": colour, "size": 6, "solidity": 0.3},
                },
            )
        )


# Label placement for turn bands: the plot's width in pixels assumed for a thread page, a
# character of the 11 px label font, and the lines labels may take before they overlap.
_PLOT_PX = 900
_LABEL_CHAR_PX = 6.2
_LABEL_LINES = 3


def _turn_bands(fig: go.Figure, bands: pd.DataFrame) -> None:
    """Shade every other turn and name each one, with the pause before it. A label that
    would run into the one before it (a short turn) goes on the next line down."""
    if len(bands) < 2:
        return
    span = float(bands["end"].max() - bands["start"].min()) or 1.0
    per_char = span * _LABEL_CHAR_PX / _PLOT_PX
    line_ends = [float("-inf")] * _LABEL_LINES  # where the last label of each line ends
    for i, band in enumerate(bands.itertuples(index=False)):
        label = f"turn {band.turn}"
        if band.idle_ms and band.idle_ms > 0:
            label += f" · {human.duration(band.idle_ms)} later"
        start = float(band.start)
        free = [k for k, end in enumerate(line_ends) if end <= start]
        line = free[0] if free else min(range(_LABEL_LINES), key=line_ends.__getitem__)
        line_ends[line] = start + (len(label) + 1) * per_char
        fig.add_vrect(
            annotation_yshift=-14 * line,
            x0=band.start,
            x1=band.end,
            fillcolor=BAND_FILL if i % 2 == 0 else "rgba(0,0,0,0)",
            line_width=0,
            layer="below",
            annotation_text=label,
            annotation_position="top left",
            annotation_font_size=11,
            annotation_font_color="#555",
        )
        if i:
            fig.add_vline(x=band.start, line_width=1, line_dash="dot", line_color="#888")


def timeline_figure(
    tl: pd.DataFrame,
    axis: str,
    colour_by: str = "kind",
    webgl_above: int = WEBGL_ABOVE,
    bands: pd.DataFrame | None = None,
) -> go.Figure:
    """Steps as horizontal bars on one row per node, coloured by ``colour_by``.

    ``tl`` comes from ``frames.timeline_frame``; ``axis`` is ``"time"`` (seconds since the
    first step, pauses between turns cut out) or ``"step"`` (sequence order). ``bands``
    (``frames.turn_bands``) marks the turns of a conversation. Up to ``webgl_above``
    steps, one SVG bar per step. Above, WebGL line segments on numbered rows: steps of a row
    closer than 1/``MERGE_RESOLUTION`` of the span are joined into one bar (they would share
    a pixel), and hovering a bar tells how many steps it holds. Numeric arrays reach the
    browser as compact binary. Steps that have started and not ended (``open``) are drawn
    apart, hatched and outlined, up to where ``timeline_frame`` ended them (now).
    """
    fig = go.Figure()
    if tl.empty:
        return fig
    lanes = list(dict.fromkeys(safe(tl["lane"])))
    span = float(tl["end"].max() - tl["start"].min()) or 1.0
    is_open = tl["open"].to_numpy(dtype=bool) if "open" in tl else np.zeros(len(tl), dtype=bool)
    opened, tl = tl[is_open], tl[~is_open]
    if len(tl) > webgl_above:
        bars = frames.merge_steps(tl, colour_by, span / MERGE_RESOLUTION)
        bars["lane"] = safe(bars["lane"])
        bars["value"] = safe(bars["value"])
        row = {name: len(lanes) - 1 - i for i, name in enumerate(lanes)}
        palette = colour_map(sorted(bars["value"].unique()), colour_by)
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
                + part["busy_ms"].map(human.duration)
            ).to_numpy()
            fig.add_trace(
                go.Scattergl(
                    x=np.round(np.column_stack([start, end, gap]).ravel(), 4),
                    y=np.column_stack([y, y, gap]).ravel(),
                    mode="lines",
                    name=str(value),
                    hovertext=np.column_stack([text, text, np.full(n, "")]).ravel(),
                    hoverinfo="text",
                    line={"width": 12, "color": palette[value]},
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
        if not opened.empty:
            _open_bars(fig, opened, safe(opened["lane"]).map(row).to_numpy(dtype="float64"), span)
    else:
        lane = safe(tl["lane"])
        colour = safe(tl[colour_by])
        palette = colour_map(sorted(colour.unique()), colour_by)
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
                    marker={"color": palette[value], "line": {"width": 0}},
                )
            )
        if not opened.empty:
            _open_bars(fig, opened, safe(opened["lane"]), span)
        fig.update_yaxes(categoryorder="array", categoryarray=lanes[::-1])
    if bands is not None and axis == "time":
        _turn_bands(fig, bands)
    several_turns = bands is not None and len(bands) > 1
    fig.update_layout(
        barmode="overlay",
        bargap=0.25,
        height=160 + 42 * len(lanes),
        legend={"title": {"text": colour_by}, "orientation": "h", "y": -0.25, "x": 0},
        margin={"l": 10, "r": 10, "t": 40 if several_turns else 20, "b": 40},
        hovermode="closest",
        xaxis_title=(
            "step (no timings recorded)"
            if axis != "time"
            else "seconds since the first step (pauses between turns cut out)"
            if several_turns
            else "seconds since the first step"
        ),
    )
    fig.update_yaxes(title=None, automargin=True)
    return fig


def layout(fig: go.Figure, title: str, height: int = 320, **kw: object) -> go.Figure:
    """Title on top, the legend in a row under it, labels given the room they need."""
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 70, "b": 30},
        title={"text": title, "font": {"size": 15}, "y": 0.97, "yanchor": "top"},
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0, "xanchor": "left"},
        **kw,
    )
    fig.update_yaxes(automargin=True)
    return fig


BUCKET_FORMATS = {"hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d", "week": "week of %Y-%m-%d"}


def traces_per_day_figure(per_day: pd.DataFrame, bucket: str = "day") -> go.Figure:
    """Stacked bars: traces created per ``bucket`` (hour, day or week), by status."""
    fig = go.Figure()
    for status in sorted(per_day["status"].unique()) if not per_day.empty else []:
        part = per_day[per_day["status"] == status]
        fig.add_trace(
            go.Bar(
                x=part["day"],
                y=part["traces"],
                name=plain(status),
                marker_color=colours.colour_of(status, "status"),
                hovertemplate="%{x|"
                + BUCKET_FORMATS.get(bucket, "%Y-%m-%d")
                + "}: %{y:,} "
                + plain(status)
                + "<extra></extra>",
            )
        )
    return layout(fig, barmode="stack", title=f"Traces per {bucket}", xaxis_title=None, yaxis_title="traces")


def errors_per_day_figure(daily: pd.DataFrame, bucket: str = "day") -> go.Figure:
    """Traces that failed or recorded an error step, per ``bucket``: their count as bars,
    their share of the bucket's traces as a line."""
    fig = go.Figure()
    if not daily.empty:
        hover = [
            f"{w:,} of {human.count(int(t), 'trace')} ({r:.0%})"
            for w, t, r in zip(daily["with_errors"], daily["traces"], daily["error_rate"], strict=True)
        ]
        fig.add_trace(
            go.Bar(
                x=daily["day"],
                y=daily["with_errors"],
                name="traces with errors",
                marker_color=colours.STATUS["failed"],
                hovertext=hover,
                hoverinfo="x+text",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=daily["day"],
                y=daily["error_rate"],
                name=f"share of the {bucket}'s traces",
                yaxis="y2",
                mode="lines+markers",
                line={"color": colours.BLACK, "width": 1.5},
                hovertext=hover,
                hoverinfo="x+text",
            )
        )
    return layout(
        fig,
        title=f"Traces with errors per {bucket}",
        xaxis_title=None,
        yaxis={"title": "traces", "rangemode": "tozero"},
        yaxis2={
            "overlaying": "y",
            "side": "right",
            "tickformat": ".0%",
            "range": [0, 1.05],
            "tickvals": [0, 0.25, 0.5, 0.75, 1],
            "showgrid": False,
        },
    )


def latency_figure(latency: pd.DataFrame, title: str) -> go.Figure:
    """p50 and p95 over time: columns ``bucket``, ``p50_ms``, ``p95_ms`` (and ``n``, how many
    it was computed from). Buckets without values are left out."""
    fig = go.Figure()
    shown = latency.dropna(subset=["p50_ms", "p95_ms"], how="all") if not latency.empty else latency
    for column, name, colour in (
        ("p50_ms", "median", colours.PAIR[0]),
        ("p95_ms", "95th percentile", colours.PAIR[1]),
    ):
        if shown.empty:
            continue
        fig.add_trace(
            go.Scatter(
                x=shown["bucket"],
                y=shown[column] / 1000.0,
                name=name,
                mode="lines+markers",
                line={"color": colour},
                hovertext=[
                    f"{name}: {human.duration(v)} ({human.count(int(n), 'value')})"
                    for v, n in zip(shown[column], shown["n"], strict=True)
                ],
                hoverinfo="x+text",
            )
        )
    return layout(fig, title=title, xaxis_title=None, yaxis={"title": "seconds", "rangemode": "tozero"})


def split_bars_figure(
    names: pd.Series, total: pd.Series, part: pd.Series, labels: tuple[str, str], title: str
) -> go.Figure:
    """Horizontal bars of ``total`` per name, the ``part`` of it (errors, failures) stacked
    in the error colour, biggest first."""
    shown = safe(names) if len(names) else []
    fig = go.Figure(
        [
            go.Bar(y=shown, x=total - part, orientation="h", name=labels[0], marker_color=colours.NEUTRAL),
            go.Bar(y=shown, x=part, orientation="h", name=labels[1], marker_color=colours.STATUS["failed"]),
        ]
    )
    fig.update_yaxes(autorange="reversed")
    return layout(fig, height=150 + 28 * max(len(names), 1), barmode="stack", title=title)


def node_entries_figure(per_node: pd.DataFrame) -> go.Figure:
    """Entries per node, error steps stacked in the error colour."""
    return split_bars_figure(
        per_node["node"], per_node["entries"], per_node["errors"], ("ok", "error"), "Steps per node"
    )


def users_figure(per_user: pd.DataFrame) -> go.Figure:
    """Traces per user, failed ones in the error colour."""
    return split_bars_figure(
        per_user["user_id"], per_user["traces"], per_user["failed"], ("not failed", "failed"), "Busiest users"
    )


def node_duration_figure(per_node: pd.DataFrame) -> go.Figure:
    """Median and 95th percentile step duration per node; nodes without timings left out."""
    timed = per_node.dropna(subset=["p50_ms", "p95_ms"], how="all") if not per_node.empty else per_node
    names = safe(timed["node"]) if not timed.empty else []
    fig = go.Figure(
        [
            go.Bar(
                y=names,
                x=timed[column] / 1000.0,
                orientation="h",
                name=name,
                marker_color=colour,
                hovertext=[f"{name}: {human.duration(v)}" for v in timed[column]],
                hoverinfo="y+text",
            )
            for column, name, colour in (
                ("p50_ms", "median", colours.PAIR[0]),
                ("p95_ms", "95th percentile", colours.PAIR[1]),
            )
        ]
    )
    fig.update_yaxes(autorange="reversed")
    return layout(
        fig,
        height=150 + 34 * max(len(timed), 1),
        barmode="group",
        title="Step duration per node",
        xaxis_title="seconds",
    )
