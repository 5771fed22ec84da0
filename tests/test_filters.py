"""dashboard/filters.py: the one mapping between the URL, the filter widgets and TraceFilter."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashboard import filters
from dashboard.filters import FilterError, FilterForm
from tracedb import TraceFilter
from tracedb.models import STATUSES

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)


@st.composite
def forms(draw: st.DrawFn) -> FilterForm:
    span = draw(st.sampled_from(list(filters.RANGES)))
    days = draw(st.lists(st.dates(date(2020, 1, 1), date(2030, 1, 1)), min_size=2, max_size=2))
    return FilterForm(
        q=draw(text),
        user=draw(text),
        thread=draw(text),
        name=draw(text),
        status=tuple(draw(st.lists(st.sampled_from(STATUSES), unique=True))),
        node=draw(text),
        range=span,
        dates=tuple(days) if span == filters.CUSTOM else (),
        contains=draw(st.sampled_from(["", '{"node": "tools"}', "[1, 2]"])),
        size=draw(st.sampled_from(filters.PAGE_SIZES)),
    )


@given(forms())
def test_a_form_survives_the_url(form: FilterForm) -> None:
    assert FilterForm.from_params(form.to_params()) == form


@given(forms(), st.integers(1, 500))
def test_a_link_holds_the_form_and_the_page(form: FilterForm, page: int) -> None:
    query = parse_qs(urlsplit(filters.traces_link(form, page)).query, keep_blank_values=True)
    assert FilterForm.from_params(query) == form
    assert filters.page_from_params(query) == page


def test_defaults_leave_the_url_empty_and_filter_nothing() -> None:
    assert FilterForm().to_params() == {}
    assert filters.traces_link(FilterForm()) == "/"
    assert FilterForm().to_filter(NOW) == TraceFilter()
    assert FilterForm().is_empty and FilterForm(size=200).is_empty and not FilterForm(user="ana").is_empty


def test_the_form_means_this_filter() -> None:
    form = FilterForm(
        q=" timeout ",
        user="ana",
        thread=" t-1 ",
        name="night",
        status=("failed", "running"),
        node="tools",
        range="last 24 hours",
        contains='{"node": "tools"}',
    )
    assert form.to_filter(NOW) == TraceFilter(
        user_id="ana",
        thread_id="t-1",
        name="night",
        status=("failed", "running"),
        since=NOW - timedelta(days=1),
        node="tools",
        text="timeout",
        contains={"node": "tools"},
    )
    between = FilterForm(range=filters.CUSTOM, dates=(date(2026, 1, 5), date(2026, 1, 2)))
    assert between.to_filter(NOW) == TraceFilter(
        since=datetime(2026, 1, 2, tzinfo=UTC), until=datetime(2026, 1, 6, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "failed"}, FilterForm(status=("failed",))),
        ({"status": ["failed", "bogus"]}, FilterForm(status=("failed",))),
        ({"range": "last fortnight"}, FilterForm()),
        ({"size": "13"}, FilterForm()),
        ({"size": "100"}, FilterForm(size=100)),
        ({"dates": ["2026-01-01", "2026-01-02"]}, FilterForm()),  # dates without their range
        ({"range": filters.CUSTOM, "dates": ["2026-01-01", "not a date"]}, FilterForm(range=filters.CUSTOM)),
        ({"unrelated": "x"}, FilterForm()),
    ],
)
def test_odd_urls_become_the_nearest_form(params: dict, expected: FilterForm) -> None:
    assert FilterForm.from_params(params) == expected


@pytest.mark.parametrize(
    ("raw", "page"), [(None, 1), ("3", 3), ("0", 1), ("-2", 1), ("x", 1), (["2", "4"], 4)]
)
def test_page_numbers(raw: object, page: int) -> None:
    assert filters.page_from_params({} if raw is None else {"page": raw}) == page


@pytest.mark.parametrize(
    ("contains", "message"), [('{"node": tools}', "not valid JSON"), ("42", "object or array")]
)
def test_bad_json_is_a_clear_error(contains: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        FilterForm(contains=contains).to_filter(NOW)
