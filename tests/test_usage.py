"""dashboard/usage.py: tokens and cost per bucket and per model; unknown stays unknown."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from dashboard import usage
from tracedb.models import TraceSummary

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def row(day: int, status: str, it: int | None, ot: int | None, usd: float | None) -> dict:
    total = None if it is None else it + (ot or 0)
    return {
        "day": T0 + timedelta(days=day),
        "status": status,
        "traces": 1,
        "input_tokens": it,
        "output_tokens": ot,
        "total_tokens": total,
        "cost_usd": usd,
    }


def test_per_bucket_sums_statuses_and_keeps_unknown_missing() -> None:
    frame = usage.per_bucket(
        [
            row(0, "completed", 100, 20, 0.01),
            row(0, "failed", 50, 5, None),
            row(1, "completed", None, None, None),  # no usage reported: left out
            row(2, "completed", 10, None, None),
        ]
    )
    assert frame["bucket"].tolist() == [T0, T0 + timedelta(days=2)]
    assert frame["input_tokens"].tolist() == [150, 10]
    assert frame["output_tokens"].tolist()[0] == 25 and math.isnan(frame["output_tokens"].tolist()[1])
    assert frame["cost_usd"].tolist()[0] == 0.01 and math.isnan(frame["cost_usd"].tolist()[1])
    assert usage.per_bucket([]).empty


def test_figures_draw_what_is_known() -> None:
    frame = usage.per_bucket([row(0, "completed", 100, 20, 0.01), row(1, "completed", 7, None, None)])
    fig = usage.tokens_figure(frame, "day")
    assert [t.name for t in fig.data] == ["input tokens", "output tokens", "cost (USD)"]
    assert fig.layout.title.text == "Tokens and cost per day"
    models = usage.per_model(
        [
            {"model": "small", "steps": 3, "input_tokens": 5, "output_tokens": 5, "total_tokens": 10},
            {
                "model": '<b>"big"</b>',
                "steps": 1,
                "input_tokens": 90,
                "output_tokens": 10,
                "total_tokens": 100,
            },
        ]
    )
    assert models["model"].tolist() == ['<b>"big"</b>', "small"]
    fig = usage.models_figure(models)
    assert list(fig.data[0].y) == ['&lt;b&gt;"big"&lt;/b&gt;', "small"]
    assert list(fig.data[0].hovertext) == ["100 tokens · — · 1 step", "10 tokens · — · 3 steps"]
    usage.tokens_figure(usage.per_bucket([]), "hour")
    usage.models_figure(usage.per_model([]))


def test_deltas_and_one_line_of_usage() -> None:
    assert usage.delta_text(1500, 300) == "+1,200 vs A"
    assert usage.delta_text(0.001, 0.004, money=True) == "−$0.003 vs A"
    assert usage.delta_text(None, 3) is None and usage.delta_text(3, 3) is None
    base = dict(
        id="x", user_id="u", provider_id=None, thread_id="t", name=None, status="completed", entry_count=1
    )
    trace = TraceSummary(
        **base,
        created_at=T0,
        updated_at=T0,
        input_tokens=980,
        output_tokens=224,
        total_tokens=1204,
        cost_usd=0.0031,
    )
    assert usage.tokens_line(trace) == "1,204 tokens (980 in, 224 out) · $0.0031"
    assert usage.tokens_line(TraceSummary(**base, created_at=T0, updated_at=T0)) == "—"
