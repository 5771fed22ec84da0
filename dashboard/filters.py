"""The traces page's filters: what the URL holds, what the widgets hold, and the
``TraceFilter`` they mean. The one place that maps between the three.

Each field of :class:`FilterForm` is a widget key and, through ``bind="query-params"``,
the URL parameter of the same name, e.g. ``/?user=ana&status=failed&status=running``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from tracedb import TraceFilter
from tracedb.models import STATUSES

# Options are their own labels: a bound widget writes the label into the URL.
RANGES: dict[str, timedelta | None] = {
    "any time": None,
    "last hour": timedelta(hours=1),
    "last 24 hours": timedelta(days=1),
    "last 7 days": timedelta(days=7),
    "last 30 days": timedelta(days=30),
    "between dates": None,
}
CUSTOM = "between dates"
PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_SIZE = 50
# The page number of a listing; not a filter, but in the URL beside them.
PAGE_PARAM = "page"


_LISTS = ("status", "dates")


class FilterError(ValueError):
    """A filter as typed cannot be used; the message says why and how to fix it."""


@dataclass(frozen=True)
class FilterForm:
    """The filter widgets' values, named as their keys and URL parameters."""

    q: str = ""
    user: str = ""
    thread: str = ""
    name: str = ""
    status: tuple[str, ...] = ()
    node: str = ""
    range: str = "any time"
    dates: tuple[date, ...] = ()
    contains: str = ""
    size: int = DEFAULT_SIZE

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The widget keys, which are also the URL parameters."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> FilterForm:
        """The form as the widgets hold it (``st.session_state``); missing keys are defaults."""
        values = {key: state[key] for key in cls.keys() if key in state and state[key] is not None}
        return cls.coerce(values)

    @classmethod
    def coerce(cls, values: Mapping[str, Any]) -> FilterForm:
        """A form from loosely typed values: lists for tuples, text for numbers and dates.
        Values that mean nothing (an unknown range or status, a bad date) are dropped."""
        out: dict[str, Any] = {}
        for key in ("q", "user", "thread", "name", "node", "contains"):
            if key in values:
                out[key] = str(values[key])
        if "status" in values:
            raw = values["status"]
            items = [raw] if isinstance(raw, str) else list(raw or ())
            out["status"] = tuple(s for s in items if s in STATUSES)
        if values.get("range") in RANGES:
            out["range"] = values["range"]
        if "dates" in values:
            raw = values["dates"]
            items = [raw] if isinstance(raw, (str, date)) else list(raw or ())
            try:
                days = tuple(d if isinstance(d, date) else date.fromisoformat(str(d)) for d in items)
            except ValueError:
                days = ()
            # dates only mean something for a range between dates
            out["dates"] = days[:2] if out.get("range") == CUSTOM else ()
        if "size" in values:
            try:
                size = int(values["size"])
            except (TypeError, ValueError):
                size = DEFAULT_SIZE
            out["size"] = size if size in PAGE_SIZES else DEFAULT_SIZE
        return cls(**out)

    @classmethod
    def from_params(cls, params: Mapping[str, str | list[str]]) -> FilterForm:
        """The form a URL's query parameters describe (repeated parameters as lists; of a
        single value the last counts, as in Streamlit)."""
        values: dict[str, Any] = {}
        for key in cls.keys():
            if key not in params:
                continue
            raw = params[key]
            if key in _LISTS:
                values[key] = [raw] if isinstance(raw, str) else list(raw)
            else:
                values[key] = (
                    raw[-1] if isinstance(raw, list) and raw else ("" if isinstance(raw, list) else raw)
                )
        return cls.coerce(values)

    def to_params(self) -> dict[str, str | list[str]]:
        """The URL parameters of this form: only those that differ from the defaults."""
        default = FilterForm()
        out: dict[str, str | list[str]] = {}
        for key in self.keys():
            value = getattr(self, key)
            if value == getattr(default, key):
                continue
            if key == "status":
                out[key] = list(value)
            elif key == "dates":
                out[key] = [d.isoformat() for d in value]
            else:
                out[key] = str(value)
        return out

    def cleared(self) -> FilterForm:
        """No filter at all, with the same page size."""
        return FilterForm(size=self.size)

    @property
    def is_empty(self) -> bool:
        """True when the form filters nothing."""
        return replace(self, size=DEFAULT_SIZE) == FilterForm()

    def parsed_contains(self) -> dict[str, Any] | list[Any] | None:
        """The "entry contains JSON" field as JSON, or None when empty.

        Raises:
            FilterError: the text is not JSON, or not a JSON object or array.
        """
        if not self.contains.strip():
            return None
        try:
            value = json.loads(self.contains)
        except json.JSONDecodeError as exc:
            raise FilterError(
                f"“Entry contains JSON” is not valid JSON: {exc.msg} (line {exc.lineno}, column "
                f'{exc.colno}). Example: {{"node": "tools"}}'
            ) from exc
        if not isinstance(value, (dict, list)):
            raise FilterError('“Entry contains JSON” must be a JSON object or array, e.g. {"node": "tools"}.')
        return value

    def to_filter(self, now: datetime) -> TraceFilter:
        """The ``TraceFilter`` this form means at ``now`` (relative ranges end at ``now``).

        Raises:
            FilterError: the JSON field cannot be used.
        """
        span = RANGES.get(self.range)
        since = now - span if span else None
        until = None
        if self.range == CUSTOM and len(self.dates) == 2:
            first, last = sorted(self.dates)
            since = datetime.combine(first, time.min, UTC)
            until = datetime.combine(last + timedelta(days=1), time.min, UTC)
        return TraceFilter(
            user_id=self.user.strip() or None,
            thread_id=self.thread.strip() or None,
            name=self.name.strip() or None,
            status=self.status or None,
            since=since,
            until=until,
            node=self.node.strip() or None,
            text=self.q.strip() or None,
            contains=self.parsed_contains(),
        )


def page_from_params(params: Mapping[str, str | list[str]]) -> int:
    """The page number in a URL, 1 when it is missing or not a positive number."""
    raw = params.get(PAGE_PARAM)
    raw = raw[-1] if isinstance(raw, list) and raw else raw
    try:
        number = int(str(raw))
    except ValueError:
        return 1
    return number if number >= 1 else 1


def traces_link(form: FilterForm, page: int = 1) -> str:
    """The traces page's URL for this form and page, relative to the app's root."""
    params: dict[str, str | list[str]] = dict(form.to_params())
    if page > 1:
        params[PAGE_PARAM] = str(page)
    return "/" + ("?" + urlencode(params, doseq=True) if params else "")
