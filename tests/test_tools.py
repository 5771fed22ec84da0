"""The agent's tools: real results and clear errors, without a model or a database."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent import TOOLS
from agent.tools import dates, notes, pages
from agent.tools.calculator import calculator, evaluate, format_number
from agent.tools.units import convert, convert_units, resolve_unit

pytestmark = pytest.mark.usefixtures("notes_file")


@pytest.fixture()
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> datetime:
    now = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)
    monkeypatch.setattr(dates, "clock", lambda: now)
    return now


def test_tool_names_are_unique_and_described() -> None:
    names = [t.name for t in TOOLS]
    assert len(names) == len(set(names)) == 11
    assert all(t.description for t in TOOLS)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("17 * 23", "391"),
        ("2^10", "1024"),
        ("2 ** 100", "1267650600228229401496703205376"),
        ("(2 + 3) * 4 - 6 / 4", "18.5"),
        ("0.1 + 0.2", "0.3"),
        ("7 // 2 + 7 % 2", "4"),
        ("-5 + +3", "-2"),
        ("sqrt(16) + abs(-2)", "6"),
        ("round(pi, 3)", "3.142"),
        ("min(4, 2, 8) * max(1, 3)", "6"),
        ("log(8, 2)", "3"),
        ("factorial(10)", "3628800"),
        ("3 × 4 ÷ 2", "6"),
        ("1e20 * 10", "1e21"),
    ],
)
def test_calculator_results(expression: str, expected: str) -> None:
    assert calculator.invoke({"expression": expression}) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("1 / 0", "division by zero"),
        ("__import__('os').system('echo hi')", "unsupported syntax"),
        ("__import__('os')", "unknown function '__import__'"),
        ("x + 1", "unknown name 'x'"),
        ("open('f')", "unknown function 'open'"),
        ("(1).real", "unsupported syntax"),
        ("'a' * 3", "unsupported syntax"),
        ("2 ** 100000", "result too large"),
        ("factorial(5000)", "factorial is limited"),
        ("sqrt(-1)", "math domain error"),
        ("1 +", "cannot parse"),
        ("", "empty expression"),
        ("1" * 600, "longer than"),
        ("[1, 2]", "unsupported syntax"),
        ("1 < 2", "unsupported syntax"),
    ],
)
def test_calculator_errors(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        evaluate(expression)


def test_format_number() -> None:
    assert format_number(4.0) == "4"
    assert format_number(1 / 3) == "0.333333333333"
    assert format_number(1.5e-7) == "1.5e-7"
    with pytest.raises(TypeError):
        format_number(True)


@pytest.mark.parametrize(
    ("value", "src", "dst", "expected"),
    [
        (5, "km", "miles", "5 km = 3.10686 mi"),
        (1, "mile", "feet", "1 mi = 5280 ft"),
        (100, "°F", "celsius", "100 °F = 37.7778 °C"),
        (0, "C", "K", "0 °C = 273.15 K"),
        (-40, "degrees c", "fahrenheit", "-40 °C = -40 °F"),
        (2, "pounds", "kg", "2 lb = 0.907185 kg"),
        (1, "gallon", "liters", "1 gal = 3.78541 l"),
        (100, "km/h", "mph", "100 km/h = 62.1371 mph"),
        (90, "minutes", "hours", "90 min = 1.5 h"),
        (1, "hectare", "acres", "1 ha = 2.47105 acre"),
        (1, "GiB", "MB", "1 GiB = 1073.74 MB"),
    ],
)
def test_convert_units_results(value: float, src: str, dst: str, expected: str) -> None:
    assert convert_units.invoke({"value": value, "from_unit": src, "to_unit": dst}) == expected


def test_convert_units_errors() -> None:
    with pytest.raises(ValueError, match="unknown unit 'blargs'"):
        convert(3, "blargs", "m")
    with pytest.raises(ValueError, match=r"cannot convert length \(km\) to mass \(kg\)"):
        convert(1, "km", "kg")
    with pytest.raises(ValueError, match="below absolute zero"):
        convert(-500, "F", "C")
    assert resolve_unit("Kilometres") == ("length", "km")


def test_today_uses_the_clock_and_time_zones(fixed_clock: datetime) -> None:
    assert dates.today.invoke({}) == "Today is Saturday, 2026-03-14; the time is 15:09 UTC."
    assert (
        dates.today.invoke({"timezone": "Asia/Tokyo"})
        == "Today is Sunday, 2026-03-15; the time is 00:09 Asia/Tokyo."
    )
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        dates.today.invoke({"timezone": "Mars/Olympus"})


def test_today_without_a_pinned_clock() -> None:
    before = datetime.now(UTC).date().isoformat()
    text = dates.today.invoke({})
    assert before in text or datetime.now(UTC).date().isoformat() in text


def test_date_arithmetic(fixed_clock: datetime) -> None:
    assert (
        dates.add_days.invoke({"start": "2024-01-31", "days": 30})
        == "2024-01-31 + 30 days = 2024-03-01 (Friday)"
    )
    assert (
        dates.add_days.invoke({"start": "2024-03-01", "days": -1})
        == "2024-03-01 - 1 days = 2024-02-29 (Thursday)"
    )
    assert (
        dates.add_days.invoke({"start": "tomorrow", "days": 1}) == "2026-03-15 + 1 days = 2026-03-16 (Monday)"
    )
    assert (
        dates.days_between.invoke({"start": "2024-01-01", "end": "March 1, 2024"})
        == "From 2024-01-01 to 2024-03-01 is 60 days."
    )
    assert (
        dates.days_between.invoke({"start": "2024-01-02", "end": "1 January 2024"})
        == "From 2024-01-02 to 2024-01-01 is -1 day."
    )
    assert dates.weekday.invoke({"day": "1969-07-20"}) == "1969-07-20 was a Sunday."
    assert dates.weekday.invoke({"day": "2030-01-01"}) == "2030-01-01 is a Tuesday."


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("christmas", "cannot read 'christmas' as a date"),
        ("2024-02-30", "not a valid date"),
        ("Smarch 3, 2024", "cannot read"),
    ],
)
def test_date_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dates.weekday.invoke({"day": text})


def test_add_days_beyond_the_calendar() -> None:
    with pytest.raises(ValueError, match="outside the calendar"):
        dates.add_days.invoke({"start": "9999-12-31", "days": 1})


def test_notes_round_trip_through_the_file(notes_file: Path) -> None:
    assert notes.search_notes.invoke({}) == "There are no notes yet."
    assert (
        notes.save_note.invoke({"text": "  renew the TLS certificate "})
        == "Saved note #1: renew the TLS certificate"
    )
    assert notes.save_note.invoke({"text": "buy oat milk"}) == "Saved note #2: buy oat milk"
    stored = json.loads(notes_file.read_text())["notes"]
    assert [n["id"] for n in stored] == [1, 2]
    found = notes.search_notes.invoke({"query": "Certificate TLS"})
    assert found.startswith("1 note(s) match 'Certificate TLS':\n#1 (")
    assert found.endswith("renew the TLS certificate")
    assert notes.search_notes.invoke({"query": ""}).startswith("2 note(s):")
    assert notes.search_notes.invoke({"query": "bread"}) == "No notes match 'bread'."


def test_note_errors(notes_file: Path) -> None:
    with pytest.raises(ValueError, match="needs some text"):
        notes.save_note.invoke({"text": "   "})
    with pytest.raises(ValueError, match="limited to"):
        notes.save_note.invoke({"text": "x" * (notes.MAX_NOTE_CHARS + 1)})
    notes_file.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        notes.search_notes.invoke({"query": "x"})


def test_list_and_read_pages() -> None:
    listing = pages.list_pages.invoke({})
    assert listing.splitlines()[0] == f"{len(pages.site_pages())} pages:"
    assert "- recording: Recording traces" in listing
    text = pages.read_page.invoke({"name": "recording"})
    assert text.startswith("# Recording traces") and "status `error`" in text
    assert pages.read_page.invoke({"name": "Recording Traces"}) == text
    assert pages.read_page.invoke({"name": "recording.md"}) == text


def test_read_page_errors_suggest_names() -> None:
    with pytest.raises(ValueError, match="did you mean recording"):
        pages.read_page.invoke({"name": "recordin"})
    with pytest.raises(ValueError, match="pages are: agent, "):
        pages.read_page.invoke({"name": "zzz"})


def test_search_pages_ranks_and_quotes() -> None:
    result = pages.search_pages.invoke({"query": "checkpointer"})
    lines = result.splitlines()
    assert lines[0].endswith("mention 'checkpointer':")
    assert "checkpointer" in lines[1].lower()
    assert pages.search_pages.invoke({"query": "kubernetes"}) == "No page mentions 'kubernetes'."
    with pytest.raises(ValueError, match="at least one word"):
        pages.search_pages.invoke({"query": "?"})
