"""The agent's tools. They do real work offline; failures raise ``ValueError`` with a clear text."""

from langchain_core.tools import BaseTool

from .calculator import calculator
from .dates import add_days, days_between, today, weekday
from .notes import save_note, search_notes
from .pages import list_pages, read_page, search_pages
from .units import convert_units

TOOLS: list[BaseTool] = [
    calculator,
    convert_units,
    today,
    add_days,
    days_between,
    weekday,
    save_note,
    search_notes,
    list_pages,
    read_page,
    search_pages,
]
"""Every tool, in the order they are offered to the model."""

TOOLS_BY_NAME: dict[str, BaseTool] = {t.name: t for t in TOOLS}

__all__ = ["TOOLS", "TOOLS_BY_NAME"]
