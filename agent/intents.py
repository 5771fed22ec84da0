"""How the offline model reads a request: the tool calls it needs, and how answers are worded.

Patterns are matched per clause ("what is 2 + 2? then convert 5 km to miles" is two
clauses), in a fixed order, so the same text always gives the same calls.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .tools.calculator import CONSTANTS, FUNCTIONS
from .tools.units import resolve_unit


@dataclass(frozen=True)
class PlannedCall:
    """A tool call the request asks for."""

    name: str
    args: dict[str, Any]


@dataclass(frozen=True)
class Request:
    """What a user message asks for."""

    calls: list[PlannedCall] = field(default_factory=list)
    greeting: bool = False
    asks_help: bool = False
    asks_history: bool = False


_I = re.IGNORECASE
_ASK = r"(?:(?:what|which|when|tell me)(?:'s)?\s+(?:(?:is|will|be|was|the|date|day|it|me)\s+)*)?"
_POLITE = re.compile(
    r"^(?:(?:please|hey|ok|okay|so|now|and|also|then|can you|could you|would you|kindly)[\s,]+)+|[\s,]+please$",
    _I,
)
_SPLIT = re.compile(r"[?!;]+\s*|\.\s+(?=[A-Za-z])|\n+|\s+(?:and then|then|and also)\s+", _I)
_GREETING = re.compile(
    r"^(?:hi|hello|hey|hiya|good (?:morning|afternoon|evening)|greetings)(?: there)?\W*$", _I
)
_HELP = re.compile(
    r"^(?:help|what can you do|what (?:tools|skills) do you have|what are your (?:tools|capabilities)|"
    r"which tools (?:do you have|can you use))\W*$",
    _I,
)
_SAID = r"(?:ask(?:ed)?|say|said|tell|told|type[d]?|write|wrote|want(?:ed)?)"
_HISTORY = re.compile(
    # what did I ask (you) (first / before), what have I said so far
    rf"\bwhat (?:did|have|had|was it) i (?:\w+ )?{_SAID}\b|"
    # remind me what I asked, tell me what I said earlier
    rf"\b(?:remind me|tell me|show me|repeat|recall)(?: of)?(?: what| everything)? i (?:\w+ )?{_SAID}\b|"
    # my first question, the previous message, our earlier requests
    r"\b(?:my|the|our) (?:previous|last|earlier|first|prior|original|other) (?:questions?|messages?|requests?|prompts?)\b|"
    # what have we talked about, recap our conversation, the conversation so far
    r"\bwhat (?:have|did) we (?:talk(?:ed)? about|discuss(?:ed)?|cover(?:ed)?)\b|"
    r"\b(?:summari[sz]e|recap|repeat)(?: of)? (?:our|this|the) (?:conversation|chat|discussion)\b|"
    r"\b(?:our|this) (?:conversation|chat) so far\b",
    _I,
)
_NOTE_SAVE = [
    re.compile(
        r"^(?:save|add|write|take|make|create)(?: me)?(?: a| this| the)? note(?: that| saying)?\s*[:,-]?\s*(?P<text>.+)$",
        _I | re.S,
    ),
    re.compile(r"^(?:remember|note)(?: that)?\s*[:,-]?\s+(?P<text>.+)$", _I | re.S),
]
_NOTE_SEARCH = [
    re.compile(
        r"^(?:search|find|look up|look through|check|grep)(?: in| through)?(?: my| the)? notes"
        r"(?: for| about| on| with| mentioning)?\s*(?P<q>.*)$",
        _I,
    ),
    re.compile(r"^(?:list|show|read|get|display)(?: me)?(?: all)?(?: of)?(?: my| the)? notes$", _I),
    re.compile(
        r"^what (?:notes do i have|did i (?:note|save|write down))(?: about| on| for)?\s*(?P<q>.*)$", _I
    ),
    re.compile(
        r"^(?:do i have|are there|any) (?:any )?notes(?: about| on| for| mentioning)?\s*(?P<q>.*)$", _I
    ),
]
_DOCS = r"(?:docs|documentation|pages|site|tracedb docs)"
_PAGES_LIST = re.compile(
    rf"^(?:list|show|what are|which are|what)(?: me)?(?: all)?(?: of)?(?: the)?(?: available)? {_DOCS}"
    r"(?: pages)?(?: are there| do you have| exist| are available)?$",
    _I,
)
_PAGE_READ = [
    re.compile(
        r"^(?:read|open|show|display|get)(?: me)?(?: the)? (?:page|doc|docs page)"
        r"(?: called| named| about| on| for)?\s+['\"]?(?P<name>.+?)['\"]?$",
        _I,
    ),
    re.compile(
        r"^(?:read|open|show|display|get)(?: me)?(?: the)? ['\"]?(?P<name>[\w\- ]+?)['\"]? (?:page|doc)$", _I
    ),
]
_PAGE_SEARCH = [
    re.compile(
        rf"^(?:search|grep|look|look up)(?: in| through)?(?: the)? {_DOCS}(?: for| about)?\s+(?P<q>.+)$", _I
    ),
    re.compile(rf"^what do(?:es)? the {_DOCS} say about\s+(?P<q>.+)$", _I),
    re.compile(rf"^(?:find|search for|search|look up) (?P<q>.+?) in the {_DOCS}$", _I),
]
_TODAY = [
    re.compile(
        rf"^{_ASK}(?:the )?(?:date|day|time)(?: is it)?(?: today| now| right now)?(?: in (?P<tz>[\w/+\-]+))?$",
        _I,
    ),
    re.compile(r"^what day is (?:it|today)(?: today)?$", _I),
    re.compile(
        r"^(?:what time is it|current time|current date|today's date)(?: now)?(?: in (?P<tz>[\w/+\-]+))?$", _I
    ),
]
_WEEKDAY = [
    re.compile(
        r"^(?:what|which) (?:day of the week|weekday|day) (?:is|was|will be|falls on|is it on)\s+(?P<d>.+)$",
        _I,
    ),
    re.compile(
        r"^(?:on )?(?:what|which) (?:day of the week|weekday|day) (?:does|did|will) (?P<d>.+?) fall(?: on)?$",
        _I,
    ),
]
_UNIT_WORDS = r"(?P<u>days?|weeks?)"
_ADD_DAYS = [
    (
        re.compile(
            rf"^{_ASK}(?P<n>\d+) {_UNIT_WORDS} (?P<dir>after|from|before|earlier than) (?P<d>.+)$", _I
        ),
        None,
    ),
    (re.compile(rf"^(?:add|plus) (?P<n>\d+) {_UNIT_WORDS} to (?P<d>.+)$", _I), 1),
    (re.compile(rf"^(?:subtract|minus|take|take away) (?P<n>\d+) {_UNIT_WORDS} from (?P<d>.+)$", _I), -1),
    (re.compile(rf"^{_ASK}in (?P<n>\d+) {_UNIT_WORDS}(?: from (?:now|today))?$", _I), 1),
]
_DAYS_BETWEEN = [
    re.compile(
        r"^(?:how many )?days (?:are there )?(?:between|from) (?P<a>.+?) (?:and|to|until|till) (?P<b>.+)$", _I
    ),
    re.compile(r"^how many days (?:are there |are left |remain )?(?:until|till|to|before) (?P<b>.+)$", _I),
    re.compile(r"^how many days (?:have passed |has it been |is it )?since (?P<a>.+)$", _I),
]
_NUMBER = r"-?(?:\d[\d,]*(?:\.\d+)?|\.\d+)"
_CONVERT = [
    re.compile(
        rf"^(?P<verb>convert\s+)?(?:{_ASK}|how (?:much|many|far|long|heavy|fast|big|hot|cold) (?:is|are)\s+)?"
        rf"(?P<v>{_NUMBER})\s*(?P<src>[^\d]+?)\s+(?:to|in|into|as)\s+(?P<dst>[^\d]+?)$",
        _I,
    ),
    re.compile(
        rf"^how many (?P<dst>[^\d]+?) (?:are )?(?:there )?in (?:a |an |one )?(?P<v>{_NUMBER})?\s*(?P<src>[^\d]+?)$",
        _I,
    ),
]
_CALC_WORDS = [
    (r"\bsquare root of\s+(\S+)", r"sqrt(\1)"),
    (r"\bmultiplied by\b|\btimes\b", "*"),
    (r"\bdivided by\b", "/"),
    (r"\bplus\b", "+"),
    (r"\bminus\b", "-"),
    (r"\b(?:to the power of|raised to)\b", "**"),
    (r"\bsquared\b", "** 2"),
    (r"\bcubed\b", "** 3"),
    (r"\bmod(?:ulo)?\b", "%"),
    (r"(?<=\d)\s*x\s*(?=\d)", " * "),
    (r"(\d+(?:\.\d+)?)\s*% of\s+(\d+(?:\.\d+)?)", r"\1 / 100 * \2"),
]
_TOKEN = re.compile(r"\d+(?:\.\d+)?(?:e[+-]?\d+)?|\*\*|//|[-+*/%^()×÷,]|[a-z_][a-z_0-9]*|\S", _I)
_OPERATORS = {"+", "-", "*", "/", "//", "%", "**", "^", "×", "÷"}
_ISO_DATE = re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b")


def _first(patterns: Iterable[re.Pattern[str]], text: str) -> re.Match[str] | None:
    return next((m for p in patterns if (m := p.match(text))), None)


def _clean(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip().strip("?!. ")
    return _POLITE.sub("", text).strip(" ,")


def _units_known(*names: str) -> bool:
    try:
        for name in names:
            resolve_unit(name)
    except ValueError:
        return False
    return True


def _convert(text: str) -> list[PlannedCall] | None:
    match = _first(_CONVERT, text)
    if not match:
        return None
    src, dst = match["src"].strip(), match["dst"].strip()
    # Without an explicit "convert" only known units count, so "what is 5 to 3" stays arithmetic;
    # with it the tool gets to say which unit it does not know.
    if not match.groupdict().get("verb") and not _units_known(src, dst):
        return None
    value = float((match["v"] or "1").replace(",", ""))
    return [PlannedCall("convert_units", {"value": value, "from_unit": src, "to_unit": dst})]


def _dates(text: str) -> list[PlannedCall] | None:
    if match := _first(_TODAY, text):
        return [PlannedCall("today", {"timezone": match.groupdict().get("tz") or "UTC"})]
    if match := _first(_WEEKDAY, text):
        return [PlannedCall("weekday", {"day": match["d"].strip()})]
    if match := _first(_DAYS_BETWEEN, text):
        # A missing end of the range ("how many days until ...") is today.
        start, end = match.groupdict().get("a") or "today", match.groupdict().get("b") or "today"
        return [PlannedCall("days_between", {"start": start.strip(), "end": end.strip()})]
    for pattern, sign in _ADD_DAYS:
        if match := pattern.match(text):
            days = int(match["n"]) * (7 if match["u"].lower().startswith("week") else 1)
            if sign is None:
                sign = -1 if match["dir"].lower() in ("before", "earlier than") else 1
            start = match.groupdict().get("d") or "today"
            return [PlannedCall("add_days", {"start": start.strip(), "days": sign * days})]
    return None


def _notes_and_pages(text: str) -> list[PlannedCall] | None:
    if match := _first(_NOTE_SEARCH, text):
        return [PlannedCall("search_notes", {"query": (match.groupdict().get("q") or "").strip("'\" ")})]
    if _PAGES_LIST.match(text):
        return [PlannedCall("list_pages", {})]
    if match := _first(_PAGE_SEARCH, text):
        return [PlannedCall("search_pages", {"query": match["q"].strip("'\" ")})]
    if match := _first(_PAGE_READ, text):
        return [PlannedCall("read_page", {"name": match["name"].strip()})]
    return None


def _math_token(token: str, depth: int) -> bool:
    low = token.lower()
    return (
        token[0].isdigit()
        or token in _OPERATORS
        or token in "()"
        or low in FUNCTIONS
        or low in CONSTANTS
        or (token == "," and depth > 0)
    )


def _join(tokens: list[str]) -> str:
    """Write tokens the way people do: ``-5 + sqrt(16) * (2 + 3)``."""
    out: list[str] = []
    prev: str | None = None
    unary = False
    for token in tokens:
        tight = (
            prev is None
            or prev == "("
            or token in (")", ",")
            or unary
            or (token == "(" and prev.lower() in FUNCTIONS)
        )
        out.append(token if tight else " " + token)
        unary = token in ("-", "+") and (prev is None or prev in _OPERATORS or prev in ("(", ","))
        prev = token
    return "".join(out)


def _expressions(text: str) -> list[PlannedCall] | None:
    if _ISO_DATE.search(text):
        return None
    for pattern, repl in _CALC_WORDS:
        text = re.sub(pattern, repl, text, flags=_I)
    runs: list[list[str]] = [[]]
    depth = 0
    for token in _TOKEN.findall(text):
        if _math_token(token, depth):
            depth += (token == "(") - (token == ")")
            runs[-1].append(token)
        elif runs[-1]:
            runs.append([])
            depth = 0
    calls = []
    for run in runs:
        while run and (run[-1] in _OPERATORS or run[-1] in "(,"):
            run.pop()
        while run and run[0] in _OPERATORS - {"-", "+"}:
            run.pop(0)
        has_value = any(t[0].isdigit() or t.lower() in CONSTANTS for t in run)
        has_work = any(t in _OPERATORS for t in run[1:]) or any(t.lower() in FUNCTIONS for t in run)
        if has_value and has_work:
            calls.append(PlannedCall("calculator", {"expression": _join(run)}))
    return calls or None


_CLAUSE_PARSERS: list[Callable[[str], list[PlannedCall] | None]] = [
    _notes_and_pages,
    _dates,
    _convert,
    _expressions,
]


def parse_request(text: str) -> Request:
    """Read a user message into the tool calls it needs, in the order they were asked.

    Args:
        text: the user's message.

    Returns:
        The planned calls, plus whether the message greets, asks for help or asks about
        the earlier conversation (those need no tool).
    """
    whole = _clean(text)
    # A note is kept whole, even when it has several sentences.
    if match := _first(_NOTE_SAVE, whole):
        return Request(calls=[PlannedCall("save_note", {"text": match["text"].strip()})])
    calls: list[PlannedCall] = []
    for clause in filter(None, (_clean(c) for c in _SPLIT.split(text))):
        for parse in _CLAUSE_PARSERS:
            found = parse(clause)
            if found:
                calls.extend(found)
                break
    return Request(
        calls=calls,
        greeting=bool(_GREETING.match(whole)),
        asks_help=bool(_HELP.match(whole)),
        asks_history=bool(_HISTORY.search(whole)),
    )


_EXAMPLES = {
    "calculator": 'arithmetic ("what is 17 * 23?")',
    "convert_units": 'unit conversion ("convert 5 km to miles")',
    "today": 'today\'s date and time ("what is the date today?")',
    "add_days": 'date arithmetic ("what is 30 days after 2024-01-31?")',
    "days_between": 'counting days ("how many days between 2024-01-01 and 2024-12-25?")',
    "weekday": 'weekdays ("what day of the week is 2024-07-04?")',
    "save_note": 'saving notes ("save a note: renew the certificate")',
    "search_notes": 'finding notes ("search notes for certificate")',
    "list_pages": 'listing the tracedb docs ("list pages")',
    "read_page": 'reading a docs page ("read page recording")',
    "search_pages": 'searching the docs ("search the docs for checkpointer")',
}


def capabilities(available: Iterable[str]) -> str:
    """What the offline model can do with the tools it has, with an example for each."""
    names = [n for n in _EXAMPLES if n in set(available)]
    if not names:
        return "I am the offline model and no tools are available to me, so I cannot work this out."
    return "I work offline and can help with:\n" + "\n".join(f"- {_EXAMPLES[n]}" for n in names)


def describe_result(name: str, args: dict[str, Any], content: str, ok: bool) -> str:
    """One answer line for a tool result, or for its failure."""
    content = content.strip()
    if not ok:
        reason = content.removeprefix("Error:").strip().rstrip(".")
        return f"The {name} tool failed: {reason}."
    if name == "calculator":
        return f"{args.get('expression', '?')} = {content}"
    return content
