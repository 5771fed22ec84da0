"""dashboard/human.py and colours.py: values and colours as a person reads them."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from dashboard import colours, human
from tracedb.models import TraceSummary

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (None, "—"),
        (math.nan, "—"),
        (0, "0 ms"),
        (0.01, "<0.1 ms"),
        (0.4, "0.4 ms"),
        (15.3, "15 ms"),
        (999.4, "999 ms"),
        (1234, "1.23 s"),
        (12_340, "12.3 s"),
        (61_000, "1 min 1 s"),
        (140_760, "2 min 21 s"),
        (2_059_377.6, "34 min 19 s"),
        (3_600_000, "1 h"),
        (5_000_000, "1 h 23 min"),
        (90_000_000, "1 d 1 h"),
        (-1500, "−1.50 s"),
    ],
)
def test_durations(ms: float | None, text: str) -> None:
    assert human.duration(ms) == text


def test_counts_plurals_and_missing_values() -> None:
    assert human.count(1, "trace") == "1 trace"
    assert human.count(1204, "trace") == "1,204 traces"
    assert human.count(0, "entry") == "0 entries"
    assert human.count(1, "entry") == "1 entry"
    assert human.count(2, "error step") == "2 error steps"
    assert human.count(None, "trace") == "—"
    assert human.number(2059377.6) == "2,059,378" and human.number(None) == "—"
    assert human.percent(0.125) == "12%" and human.percent(0.004) == "0.4%" and human.percent(None) == "—"
    assert human.delta(800) == "+800 ms" and human.delta(-1200) == "−1.20 s" and human.delta(0) == "±0 ms"


def test_a_metric_change_starts_with_the_minus_streamlit_reads_as_a_decrease() -> None:
    assert human.metric_delta("−1.20 s vs A") == "-1.20 s vs A"
    assert human.metric_delta("−$0.003 vs A") == "-$0.003 vs A"
    assert human.metric_delta("+800 ms vs A") == "+800 ms vs A"
    assert human.metric_delta("±0 ms vs A") is None and human.metric_delta(None) is None


def summary(first_end_s: float, total_ms: float, turns: int) -> TraceSummary:
    return TraceSummary(
        id="00000000-0000-4000-8000-000000000001",
        user_id="ana",
        provider_id=None,
        thread_id="t",
        name=None,
        status="completed",
        entry_count=3,
        created_at=T0,
        updated_at=T0,
        first_started_at=T0,
        last_ended_at=T0 + timedelta(seconds=first_end_s),
        total_duration_ms=total_ms,
        turns=turns,
    )


def test_work_and_span() -> None:
    chat = summary(140.76, 15.0, 3)
    assert human.work_and_span(chat) == "work 15 ms · span 2 min 21 s"
    assert human.trace_duration_ms(chat) == 15.0
    run = summary(2.0, 1900.0, 1)
    assert human.work_and_span(run) == "2.00 s"
    assert human.trace_duration_ms(run) == pytest.approx(2000.0)


def test_colours_are_stable_and_do_not_depend_on_the_trace() -> None:
    assert colours.colour_of("failed", "status") == colours.colour_of("error", "status") == colours.VERMILLION
    assert colours.colour_of("llm", "kind") == colours.BLUE
    custom = colours.colour_of("retriever", "kind")
    assert custom == colours.colour_of("retriever", "kind") == colours.colour_of("retriever", "node")
    assert custom in colours.SPARE
    assert colours.status_icon("failed") != colours.status_icon("completed")
    from tracedb.models import STATUSES

    # every status a trace can read as has its own colour, badge and icon
    assert len({colours.colour_of(s, "status") for s in STATUSES}) == len(STATUSES)
    assert all(
        colours.badge_colour(s) != "gray" and colours.status_icon(s) != ":material/help:" for s in STATUSES
    )


@pytest.mark.parametrize(
    ("usd", "text"),
    [
        (None, "—"),
        (0, "$0"),
        (0.00001, "<$0.0001"),
        (0.0031, "$0.0031"),
        (0.5, "$0.50"),
        (1234.5, "$1,234.50"),
    ],
)
def test_cost_keeps_the_digits_that_matter(usd: float | None, text: str) -> None:
    assert human.cost(usd) == text


@pytest.mark.parametrize(
    ("n", "text"),
    [(None, "—"), (950, "950"), (9_999, "9,999"), (12_345, "12.3k"), (999_999, "1M"), (4.1e6, "4.1M")],
)
def test_tokens_are_short(n: float | None, text: str) -> None:
    assert human.tokens(n) == text
