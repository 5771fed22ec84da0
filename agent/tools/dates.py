"""Dates and times: today's date, adding days, days between dates, weekdays."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from langchain_core.tools import tool

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}
_RELATIVE = {"today": 0, "now": 0, "tomorrow": 1, "yesterday": -1}
_ISO = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$")
_MONTH_FIRST = re.compile(r"^([a-z]+)\.? (\d{1,2})(?:st|nd|rd|th)?,? (\d{4})$")
_DAY_FIRST = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)? (?:of )?([a-z]+)\.?,? (\d{4})$")


def clock() -> datetime:
    """The current time; a module attribute so that tests can pin "today"."""
    return datetime.now(UTC)


def today_utc() -> date:
    """The current date in UTC, from :data:`clock`."""
    return clock().astimezone(UTC).date()


def parse_date(text: str) -> date:
    """Read a date written as ``YYYY-MM-DD``, ``July 4, 2024``, ``4 July 2024`` or today/tomorrow/yesterday.

    Raises:
        ValueError: when the text is not one of those forms or not a real date.
    """
    key = re.sub(r"\s+", " ", text.strip().lower()).removeprefix("the ")
    if key in _RELATIVE:
        return today_utc() + timedelta(days=_RELATIVE[key])
    try:
        if match := _ISO.match(key):
            year, month, day = (int(g) for g in match.groups())
            return date(year, month, day)
        if (match := _MONTH_FIRST.match(key)) and match.group(1) in _MONTHS:
            return date(int(match.group(3)), _MONTHS[match.group(1)], int(match.group(2)))
        if (match := _DAY_FIRST.match(key)) and match.group(2) in _MONTHS:
            return date(int(match.group(3)), _MONTHS[match.group(2)], int(match.group(1)))
    except ValueError as exc:
        raise ValueError(f"{text.strip()!r} is not a valid date: {exc}") from exc
    raise ValueError(f"cannot read {text.strip()!r} as a date; write it as YYYY-MM-DD")


def _describe(day: date) -> str:
    return f"{day.isoformat()} ({day.strftime('%A')})"


@tool
def today(timezone: str = "UTC") -> str:
    """Give the current date, weekday and time, in UTC or an IANA time zone such as Europe/Paris."""
    try:
        zone = ZoneInfo(timezone.strip() or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {timezone!r}; use a name like Europe/Paris") from exc
    now = clock().astimezone(zone)
    return f"Today is {now.strftime('%A')}, {now.date().isoformat()}; the time is {now.strftime('%H:%M')} {zone.key}."


@tool
def add_days(start: str, days: int) -> str:
    """Add a number of days (negative to go back) to a date such as 2024-01-31 or "today"."""
    day = parse_date(start)
    try:
        result = day + timedelta(days=days)
    except OverflowError as exc:
        raise ValueError("the result is outside the calendar (years 1 to 9999)") from exc
    sign = "+" if days >= 0 else "-"
    return f"{day.isoformat()} {sign} {abs(days)} days = {_describe(result)}"


@tool
def days_between(start: str, end: str) -> str:
    """Count the days from one date to another (negative when end comes first)."""
    first, second = parse_date(start), parse_date(end)
    count = (second - first).days
    unit = "day" if abs(count) == 1 else "days"
    return f"From {first.isoformat()} to {second.isoformat()} is {count} {unit}."


@tool
def weekday(day: str) -> str:
    """Tell which day of the week a date falls on."""
    parsed = parse_date(day)
    verb = "was" if parsed < today_utc() else "is"
    return f"{parsed.isoformat()} {verb} a {parsed.strftime('%A')}."
