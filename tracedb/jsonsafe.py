"""Turn arbitrary Python values into JSON that PostgreSQL's JSONB accepts.

Rules (applied to every entry before it is stored; documented in the README):

- ``str``: NUL (``\\x00``) and lone surrogates become U+FFFD; JSONB rejects both.
- ``float``: NaN, Infinity and -Infinity become the strings ``"NaN"``, ``"Infinity"``,
  ``"-Infinity"``.
- ``datetime``, ``date``, ``time``: ISO 8601 strings (naive datetimes are kept naive).
- ``timedelta``: total seconds as a number.
- ``UUID``, ``Decimal``, ``Path``, ``ipaddress`` objects: their ``str()`` (Decimal stays exact).
- ``bytes``/``bytearray``/``memoryview``: UTF-8 text when it decodes, else
  ``"base64:" + base64``.
- ``Enum``: its value, converted by these rules.
- pydantic models (LangChain messages among them): ``model_dump(mode="json")``.
- dataclasses: a dict of their fields; ``set``/``frozenset``/``tuple``/generators: lists.
- dict keys: strings as they are; ``None``, ``True``, ``False`` as JSON writes them
  (``"null"``, ``"true"``, ``"false"``); other keys through ``str()``.
- generators and other iterators: lists of at most 10,000 items (then a marker).
- anything else: ``repr()``, cut to 1,000 characters.
- a value that cannot be converted (an ``int`` too long to write as text, an object whose
  ``repr`` raises, a mapping changed while it is read): ``"<unconvertible: Error message
  (type)>"``; the rest of the entry is kept.

Limits: an entry nested deeper than ``max_depth`` (default 64) or larger than
``max_entry_bytes`` once encoded (default 1 MiB) raises :class:`EntryTooLarge`; cycles count
as too deep.

Shapes: the trace is a list (or a dict holding that list under ``automation_trace``, as a
LangGraph state does); its entries may be any JSON values. Entries are stored as they are,
as the seed's JSONB document stored them: a dict gets its node, kind, timings and status
read into columns, any other value (a string, a number, a list, ``None``) is kept as it is
with empty columns.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import ipaddress
import itertools
import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from .errors import EntryTooLarge, InvalidTraceData
from .usage import is_mapping, usage_of

DEFAULT_MAX_ENTRY_BYTES = 1024 * 1024
DEFAULT_MAX_DEPTH = 64

_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")
# An object stored as its repr keeps this many characters of it; a placeholder this many of
# its error's text.
REPR_CHARS = 1000
PLACEHOLDER_CHARS = 300
# Items read from an iterator (a generator may never end).
MAX_ITEMS = 10_000
# Integers longer than this may exceed Python's limit on digits converted to text (4,300 by
# default, about 14,000 bits); only those are tried.
_LONG_INT_BITS = 10_000
_END = object()
_REPLACEMENT = "\ufffd"
_JSON_SCALARS = (str, int, float, bool, type(None))
# Keys as JSON writes them (json.dumps turns these keys into this text).
_JSON_KEYS = {None: "null", True: "true", False: "false"}
# An entry that is plain JSON already is written by the C encoder in one go, without the
# conversion walk (which costs more than the rest of an append): the text is the same.
_PLAIN = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _clean_str(value: str) -> str:
    if _BAD_CHARS.search(value) is None:
        return value
    return _BAD_CHARS.sub(_REPLACEMENT, value)


def unconvertible(value: Any, exc: BaseException) -> str:
    """The text stored for a value that cannot be converted: what failed, and on what."""
    try:
        detail = str(exc)
    except Exception:  # noqa: BLE001 - an exception whose text fails still names its type
        detail = ""
    try:
        kind = type(value).__name__
    except Exception:  # noqa: BLE001
        kind = "object"
    words = " ".join(part for part in (type(exc).__name__, detail[:PLACEHOLDER_CHARS]) if part)
    return _clean_str(f"<unconvertible: {words} ({kind})>")


def to_jsonable(value: Any, *, max_depth: int = DEFAULT_MAX_DEPTH, _depth: int = 0) -> Any:
    """Return ``value`` converted by the module's rules into plain JSON types.

    Never fails on a value: one that cannot be converted (an integer too long to write as
    text, an object whose ``repr`` raises, a container that changes while it is read)
    becomes the text ``"<unconvertible: ExceptionType message (type)>"``, and the rest of
    the value is kept.

    Raises:
        EntryTooLarge: when nesting exceeds ``max_depth``.
    """
    if _depth > max_depth:
        raise EntryTooLarge(f"entry is nested deeper than the limit of {max_depth} levels (max_depth)")
    try:
        return _convert(value, max_depth, _depth)
    except (EntryTooLarge, RecursionError):
        raise
    # Any Python object can reach an entry, and its methods can raise anything; the entry
    # is still stored, with this one value marked.
    except Exception as exc:  # noqa: BLE001
        return unconvertible(value, exc)


def _convert(value: Any, max_depth: int, _depth: int) -> Any:
    if isinstance(value, str):
        return _clean_str(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        number = int(value)
        if number.bit_length() > _LONG_INT_BITS:
            str(number)  # raises ValueError past Python's limit on digits written as text
        return number
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return float(value)
    nxt = _depth + 1
    if isinstance(value, Mapping):
        return {
            (
                _clean_str(k)
                if isinstance(k, str)
                else _JSON_KEYS[k]
                if k is None or isinstance(k, bool)
                else _clean_str(str(to_jsonable(k, max_depth=max_depth, _depth=nxt)))
            ): to_jsonable(v, max_depth=max_depth, _depth=nxt)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        items: Any = value
        if isinstance(value, (set, frozenset)):
            try:
                items = sorted(value, key=repr)
            except Exception:  # noqa: BLE001 - an element whose repr fails: keep the set's own order
                items = list(value)
        return [to_jsonable(v, max_depth=max_depth, _depth=nxt) for v in items]
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value, max_depth=max_depth, _depth=nxt)
    if isinstance(value, (uuid.UUID, Decimal, PurePath, ipaddress._BaseAddress, ipaddress._BaseNetwork)):
        return _clean_str(str(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return _clean_str(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(raw).decode("ascii")
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        try:
            dumped = dump(mode="json")
        except Exception:  # noqa: BLE001 - a broken model still gets stored as its repr
            dumped = repr(value)[:REPR_CHARS]
        return to_jsonable(dumped, max_depth=max_depth, _depth=nxt)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Field by field rather than dataclasses.asdict, which deep-copies every value and
        # fails on what cannot be copied (a lock, a connection).
        return {
            f.name: to_jsonable(getattr(value, f.name, None), max_depth=max_depth, _depth=nxt)
            for f in dataclasses.fields(value)
        }
    if hasattr(value, "__iter__") and hasattr(value, "__next__"):
        out = [to_jsonable(v, max_depth=max_depth, _depth=nxt) for v in itertools.islice(value, MAX_ITEMS)]
        if next(value, _END) is not _END:
            out.append(f"<truncated: more than {MAX_ITEMS:,} items>")
        return out
    return _clean_str(repr(value)[:REPR_CHARS])


def _parse_int(text: str) -> int | str:
    # Python refuses to turn more than 4,300 digits into an int; such a number (stored
    # before this limit was checked, or converted from elsewhere) is read as its digits.
    return int(text) if len(text) <= 4300 else text


def loads(text: str | bytes) -> Any:
    """JSON read back from the database. It never fails on what PostgreSQL stores: a number
    too long for Python's int is read as its digits, and a value nested too deeply for
    Python's parser is read as a placeholder string saying so (the stored value is intact)."""
    try:
        return json.loads(text, parse_int=_parse_int)
    except RecursionError:
        return f"<unreadable here: JSON nested deeper than Python can parse ({len(text):,} bytes)>"


def plain_text(entry: Any, max_depth: int = DEFAULT_MAX_DEPTH) -> str | None:
    """The JSON of an entry that is a dict of plain JSON values already, exactly as
    ``dumps(to_jsonable(entry))`` writes it; None when it needs the conversion (a value of
    another type, a NaN, an integer too long for text, a NUL or lone surrogate, a cycle) or
    may be nested deeper than ``max_depth`` (more brackets than that)."""
    if type(entry) is not dict:
        return None
    try:
        text = _PLAIN.encode(entry)
    except (TypeError, ValueError, RecursionError):
        return None
    if text.count("{") + text.count("[") > max_depth or "\\u0000" in text or _BAD_CHARS.search(text):
        return None
    return text


def dumps(value: Any) -> str:
    """Compact JSON of an already converted value."""
    return _PLAIN.encode(value)


def _parse_time(value: Any) -> datetime | None:
    """A timestamp from an entry field: ISO string, datetime, or epoch seconds/ms."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, (int, float)):
        try:  # an int too large for a float overflows in any of these
            if not math.isfinite(value):
                return None
            seconds = value / 1000.0 if abs(value) > 1e11 else float(value)
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    if not (1 <= dt.year <= 9999):
        return None
    return dt


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return None
        else:
            return None
    try:
        value = float(value)
    except OverflowError:  # an int too large for a float
        return None
    return value if math.isfinite(value) else None


def is_error_entry(entry: Mapping[str, Any]) -> bool:
    """True when an entry reports a failure (status error/failed, or a non-empty ``error``)."""
    status = entry.get("status")
    if isinstance(status, str) and status.lower() in ("error", "failed", "failure"):
        return True
    err = entry.get("error")
    try:
        return err not in (None, "", False, {}, [])
    # a value that cannot be compared (an array, say) is there, so it reports something
    except Exception:  # noqa: BLE001
        return True


TRACE_KEY = "automation_trace"


def unwrap_trace_data(trace_data: Any) -> list[Any]:
    """The list of entries ``trace_data`` holds: the list itself, or the list a dict holds
    under ``automation_trace`` (and nothing else). Entries may be any JSON values; they are
    checked one by one when they are prepared, so this costs O(1).

    Raises:
        InvalidTraceData: ``trace_data`` holds no list of entries, naming what is wrong.
    """
    if isinstance(trace_data, list):
        return trace_data
    if isinstance(trace_data, Mapping):
        if TRACE_KEY not in trace_data:
            raise InvalidTraceData(
                f"trace_data must be a list, or a dict holding the list under {TRACE_KEY!r}; "
                f"got a dict with the keys {sorted(map(str, trace_data))[:10]}"
            )
        others = sorted(str(k) for k in trace_data if k != TRACE_KEY)
        if others:
            # Dropping them silently would lose data the caller meant to keep.
            raise InvalidTraceData(
                f"trace_data as a dict may hold only {TRACE_KEY!r}; it also holds {others[:10]} "
                "(store those in metadata, or pass the list alone)"
            )
        inner = trace_data[TRACE_KEY]
        if not isinstance(inner, list):
            raise InvalidTraceData(f"trace_data[{TRACE_KEY!r}] must be a list, got {type(inner).__name__}")
        return inner
    raise InvalidTraceData(
        f"trace_data must be a list, or a dict holding the list under {TRACE_KEY!r}; "
        f"got {type(trace_data).__name__}"
    )


def check_trace_data(trace_data: Any) -> list[Any]:
    """The list of entries ``trace_data`` holds (see :func:`unwrap_trace_data`).

    Raises:
        InvalidTraceData: naming what is wrong.
    """
    return unwrap_trace_data(trace_data)


# Longest node, kind, name or status kept in an entry's columns (the entry's data keeps the
# whole text): 200 characters are at most 800 bytes, well under PostgreSQL's index row limit.
LABEL_CHARS = 200


@dataclass(frozen=True)
class PreparedEntries:
    """Entries converted and wrapped for ``tracedb_append``.

    Attributes:
        digests: one md5 hex digest per entry, of its JSON as stored; the fingerprint of a
            list of entries chains them (:func:`chain`).
        texts: the JSON of each entry as stored.
        columns: what is read into each entry's columns (its node, times, tokens, ...), its
            digest ``"h"`` and checkpoint ``"c"``: the keys of its element besides ``"d"``.
    """

    digests: list[str]
    texts: list[str]
    columns: list[dict[str, Any]]

    def payload(self, start: int = 0) -> str:
        """The JSON array of the elements (``{"d": entry, **columns}``) from ``start`` on, to
        send to ``tracedb_append``."""
        elements = (
            '{"d":' + t + "," + dumps(c)[1:]
            for t, c in zip(self.texts[start:], self.columns[start:], strict=True)
        )
        return "[" + ",".join(elements) + "]"

    def lazy_payload(self, start: int = 0) -> Payload:
        """:meth:`payload`, made only if it is sent (see :class:`Payload`)."""
        return Payload(self, start)


class Payload:
    """The payload of prepared entries as a statement parameter, its text made when the
    statement is sent (``str()``; the store's connections send it as text): an append that
    goes as a quick statement never sends it, and never pays for its JSON."""

    __slots__ = ("_prepared", "_start", "_text")

    def __init__(self, prepared: PreparedEntries, start: int = 0) -> None:
        self._prepared = prepared
        self._start = start
        self._text: str | None = None

    def __str__(self) -> str:
        if self._text is None:
            self._text = self._prepared.payload(self._start)
        return self._text

    def __repr__(self) -> str:
        return f"Payload({len(self._prepared.texts) - self._start} entries)"


def chain(start: str, digests: list[str]) -> list[str]:
    """Fingerprints after each entry: ``start`` (the fingerprint before the first), then
    ``md5(previous || digest)`` per digest; the database chains entries the same way."""
    out = [start]
    for digest in digests:
        out.append(hashlib.md5((out[-1] + digest).encode()).hexdigest())
    return out


def _error_text(data: Any) -> str:
    """What went wrong in an error entry, in at most 500 characters: its ``error``, else its
    name, node or status."""
    if isinstance(data, Mapping):
        for key in ("error", "name", "node", "status"):
            value = data.get(key)
            if value not in (None, "", {}, []):
                text = value if isinstance(value, str) else dumps(value)
                return text[:500]
    return "error"


def _label(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return value if len(value) <= LABEL_CHARS else value[:LABEL_CHARS]


def prepare_entries(
    entries: list[Any],
    *,
    max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    start_index: int = 0,
    checkpoint_ids: list[str | None] | None = None,
) -> PreparedEntries:
    """Convert entries and wrap them for ``tracedb_append``.

    Each element becomes ``{"d": entry, "n"/"k"/"nm"/"s": node, kind, name and status (for
    the columns, cut to LABEL_CHARS), "a"/"b": started/ended at in UTC, "ms": duration,
    "e": is error, "h": digest, "c": checkpoint id, "m"/"it"/"ot"/"tt"/"usd": model, tokens
    and cost (see :mod:`tracedb.usage`)}``, so the database never parses user-supplied
    time formats.

    An entry that is not a dict (any JSON value) is stored as it is, with empty columns.

    Raises:
        EntryTooLarge: an entry exceeds ``max_entry_bytes`` or ``max_depth``.
    """
    digests: list[str] = []
    texts: list[str] = []
    columns: list[dict[str, Any]] = []
    for i, entry in enumerate(entries):
        text = plain_text(entry, max_depth)
        if text is not None:
            data = entry
        else:
            try:
                data = to_jsonable(entry, max_depth=max_depth)
            except RecursionError as exc:
                raise EntryTooLarge(
                    f"trace_data[{start_index + i}] is nested too deeply (max_depth={max_depth})"
                ) from exc
            except EntryTooLarge as exc:
                raise EntryTooLarge(f"trace_data[{start_index + i}]: {exc}") from exc
            text = dumps(data)
        raw = text.encode("utf-8")
        if len(raw) > max_entry_bytes:
            raise EntryTooLarge(
                f"trace_data[{start_index + i}] is {len(raw):,} bytes as JSON, over the limit of "
                f"{max_entry_bytes:,} bytes (max_entry_bytes)"
            )
        digest = hashlib.md5(raw).hexdigest()
        digests.append(digest)
        wrapper = entry_columns(entry, data)
        wrapper["h"] = digest
        if checkpoint_ids is not None and i < len(checkpoint_ids) and checkpoint_ids[i]:
            wrapper["c"] = _label(str(checkpoint_ids[i]))
        texts.append(text)
        columns.append(wrapper)
    return PreparedEntries(digests, texts, columns)


def entry_columns(entry: Any, data: Any = None) -> dict[str, Any]:
    """What ``tracedb_append`` reads into an entry's columns besides the entry itself: node,
    kind, name, status, times, duration, error flag, model and usage. ``data`` is the entry
    as converted (default: ``entry``). Empty for an entry that is not a dict."""
    if not is_mapping(entry):
        return {"e": False}
    data = entry if data is None else data
    started = _parse_time(entry.get("started_at"))
    ended = _parse_time(entry.get("ended_at"))
    ms = _number(entry.get("duration_ms"))
    if ms is None and started and ended:
        ms = (ended - started).total_seconds() * 1000.0
    error = is_error_entry(entry)
    wrapper: dict[str, Any] = {
        "n": _label(data.get("node")),
        "k": _label(data.get("kind")),
        "nm": _label(data.get("name")),
        "s": "error" if error else _label(data.get("status")),
        "a": started.isoformat() if started else None,
        "b": ended.isoformat() if ended else None,
        "ms": ms,
        "e": error,
    }
    if error:
        wrapper["err"] = _error_text(data)
    used = usage_of(data)
    if used is not None:
        wrapper.update(
            m=used.model,
            it=used.input_tokens,
            ot=used.output_tokens,
            tt=used.total_tokens,
            usd=used.cost_usd,
        )
    return wrapper
