"""Colours that mean the same thing on every page and every trace.

The palette is Okabe and Ito's, chosen to stay distinct for the common kinds of colour
blindness. Statuses and the agent's kinds of step have fixed colours; any other value
(a node, a custom kind) gets one from its name, so it keeps it from trace to trace.
Status is never told by colour alone: badges carry an icon, charts a legend.
"""

from __future__ import annotations

import zlib

BLACK = "#000000"
ORANGE = "#E69F00"
SKY_BLUE = "#56B4E9"
GREEN = "#009E73"
YELLOW = "#F0E442"
BLUE = "#0072B2"
VERMILLION = "#D55E00"
PURPLE = "#CC79A7"
GREY = "#999999"

STATUS = {
    "ok": GREEN,
    "completed": GREEN,
    "error": VERMILLION,
    "failed": VERMILLION,
    "running": BLUE,
    "interrupted": ORANGE,
    "abandoned": PURPLE,
    "(none)": GREY,
}
KIND = {"plan": PURPLE, "llm": BLUE, "tool": ORANGE, "summary": GREEN, "(none)": GREY}
# Colours a name may be given; yellow is left out (too light on white).
SPARE = (SKY_BLUE, BLUE, ORANGE, GREEN, PURPLE, VERMILLION, BLACK, "#8C6D31", "#5E3C99", "#1B7837")
# Two series that are compared (p50/p95, ok/error, A/B).
PAIR = (SKY_BLUE, VERMILLION)
NEUTRAL = "#4C78A8"

_BADGES = {
    "completed": "green",
    "failed": "red",
    "running": "blue",
    "interrupted": "orange",
    "abandoned": "violet",
}
_ICONS = {
    "completed": ":material/check_circle:",
    "failed": ":material/error:",
    "running": ":material/progress_activity:",
    "interrupted": ":material/pause_circle:",
    "abandoned": ":material/link_off:",
}


def by_name(value: str) -> str:
    """A colour that depends on the text alone, so it is the same in every trace."""
    return SPARE[zlib.crc32(value.encode("utf-8")) % len(SPARE)]


def colour_of(value: str, by: str) -> str:
    """The colour of ``value`` (a status, a kind or a node) wherever it is drawn."""
    key = value.lower()
    if by == "status" and key in STATUS:
        return STATUS[key]
    if by == "kind" and key in KIND:
        return KIND[key]
    return GREY if key == "(none)" else by_name(value)


def badge_colour(status: str) -> str:
    """The ``st.badge`` colour of a trace status."""
    return _BADGES.get(status, "gray")


def status_icon(status: str) -> str:
    """The icon that tells a trace status without its colour."""
    return _ICONS.get(status, ":material/help:")
