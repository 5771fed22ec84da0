"""Tokens and cost: frames and figures of what the models of a time range used, per bucket
and per model, and how two traces differ in it. Pure functions of store results: no I/O.

A count the store does not know (no step of a trace reported usage) stays missing: it is
never shown as zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from dashboard import charts, colours, human
from tracedb.models import TraceSummary

USAGE_COLUMNS = ["input_tokens", "output_tokens", "total_tokens", "cost_usd"]


def per_bucket(per_day: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Tokens and cost per bucket (the store's ``per_day`` rows summed over statuses):
    ``bucket``, ``input_tokens``, ``output_tokens``, ``total_tokens``, ``cost_usd``; NaN
    where no trace of the bucket reported it. Buckets without any usage are left out."""
    frame = pd.DataFrame(list(per_day), columns=["day", *USAGE_COLUMNS])
    if frame.empty:
        return pd.DataFrame(columns=["bucket", *USAGE_COLUMNS])
    frame["bucket"] = pd.to_datetime(frame["day"], utc=True)
    for column in USAGE_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    summed = frame.groupby("bucket", as_index=False)[USAGE_COLUMNS].sum(min_count=1)
    return summed.dropna(subset=USAGE_COLUMNS, how="all").reset_index(drop=True)


def per_model(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The store's ``per_model`` rows as a frame, the biggest user of tokens first."""
    frame = pd.DataFrame(list(rows), columns=["model", "steps", *USAGE_COLUMNS])
    frame["steps"] = pd.to_numeric(frame["steps"], errors="coerce").fillna(0).astype("int64")
    for column in USAGE_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    frame["model"] = frame["model"].astype(str)
    return frame.sort_values(
        ["total_tokens", "model"], ascending=[False, True], na_position="last"
    ).reset_index(drop=True)


def readable_models(models: pd.DataFrame) -> pd.DataFrame:
    """``per_model`` for a table: counts with separators, the cost in dollars."""
    return pd.DataFrame(
        {
            "model": models["model"],
            "steps": models["steps"],
            "input tokens": models["input_tokens"].astype("Int64"),
            "output tokens": models["output_tokens"].astype("Int64"),
            "total tokens": models["total_tokens"].astype("Int64"),
            "cost": models["cost_usd"].map(human.cost),
        }
    )


def tokens_figure(usage: pd.DataFrame, bucket: str) -> go.Figure:
    """Input and output tokens per bucket as stacked bars (the total alone where the split
    is unknown), the cost as a line on its own axis."""
    fig = go.Figure()
    if not usage.empty:
        split = usage["input_tokens"].notna() | usage["output_tokens"].notna()
        unsplit = usage["total_tokens"].where(~split)
        for name, colour, values in (
            ("input tokens", colours.SKY_BLUE, usage["input_tokens"]),
            ("output tokens", colours.BLUE, usage["output_tokens"]),
            ("tokens (not split)", colours.GREY, unsplit),
        ):
            if values.notna().any():
                fig.add_trace(
                    go.Bar(
                        x=usage["bucket"],
                        y=values,
                        name=name,
                        marker_color=colour,
                        hovertext=[f"{human.tokens(v)} {name}" for v in values],
                        hoverinfo="x+text",
                    )
                )
        if usage["cost_usd"].notna().any():
            fig.add_trace(
                go.Scatter(
                    x=usage["bucket"],
                    y=usage["cost_usd"],
                    name="cost (USD)",
                    yaxis="y2",
                    mode="lines+markers",
                    line={"color": colours.BLACK, "width": 1.5},
                    hovertext=[f"cost {human.cost(v)}" for v in usage["cost_usd"]],
                    hoverinfo="x+text",
                )
            )
    return charts.layout(
        fig,
        title=f"Tokens and cost per {bucket}",
        barmode="stack",
        xaxis_title=None,
        yaxis={"title": "tokens", "rangemode": "tozero"},
        yaxis2={
            "overlaying": "y",
            "side": "right",
            "tickprefix": "$",
            "rangemode": "tozero",
            "showgrid": False,
        },
    )


def models_figure(models: pd.DataFrame) -> go.Figure:
    """Tokens per model as horizontal bars, input and output stacked; the cost and the
    number of steps in the hover text."""
    shown = models.head(15)
    names = charts.safe(shown["model"]) if not shown.empty else []
    hover = [
        f"{human.tokens(t)} tokens · {human.cost(c)} · {human.count(int(s), 'step')}"
        for t, c, s in zip(shown["total_tokens"], shown["cost_usd"], shown["steps"], strict=True)
    ]
    fig = go.Figure(
        [
            go.Bar(
                y=names,
                x=shown[column],
                orientation="h",
                name=name,
                marker_color=colour,
                hovertext=hover,
                hoverinfo="y+text",
            )
            for column, name, colour in (
                ("input_tokens", "input", colours.SKY_BLUE),
                ("output_tokens", "output", colours.BLUE),
            )
        ]
    )
    fig.update_yaxes(autorange="reversed")
    return charts.layout(
        fig,
        height=150 + 28 * max(len(shown), 1),
        barmode="stack",
        title="Tokens per model",
        xaxis_title="tokens",
    )


def delta_text(value: float | None, base: float | None, money: bool = False) -> str | None:
    """How ``value`` differs from ``base`` (``"+1.2k vs A"``, ``"−$0.0031 vs A"``); None when
    either is unknown or they are the same."""
    if value is None or base is None or value == base:
        return None
    change = value - base
    sign = "+" if change > 0 else "−"
    shown = human.cost(abs(change)) if money else human.tokens(abs(change))
    return f"{sign}{shown} vs A"


def tokens_line(summary: TraceSummary) -> str:
    """A trace's usage in one line: ``"1,204 tokens (980 in, 224 out) · $0.0031"``; "—"
    when no step reported any."""
    if summary.total_tokens is None and summary.cost_usd is None:
        return human.MISSING
    parts = []
    if summary.total_tokens is not None:
        text = f"{human.tokens(summary.total_tokens)} tokens"
        if summary.input_tokens is not None and summary.output_tokens is not None:
            text += f" ({human.tokens(summary.input_tokens)} in, {human.tokens(summary.output_tokens)} out)"
        parts.append(text)
    if summary.cost_usd is not None:
        parts.append(human.cost(summary.cost_usd))
    return " · ".join(parts)
