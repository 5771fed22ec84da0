"""Checks of the values that go into statements: ids, texts, statuses, numbers, metadata.
Each raises InvalidTraceData naming what is wrong, before anything reaches the database."""

from __future__ import annotations

import functools
import uuid
from typing import Any

from psycopg.types.json import Jsonb

from .errors import InvalidTraceData
from .jsonsafe import to_jsonable
from .limits import MAX_LIMIT, MAX_TEXT_BYTES
from .models import STATUSES, WRITABLE_STATUSES


def parse_uuid(value: Any) -> str | None:
    """The canonical text of a UUID, or None when ``value`` is not one."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        return None
    try:
        return _canonical_uuid(value)
    except ValueError:
        return None


@functools.lru_cache(maxsize=1024)
def _canonical_uuid(text: str) -> str:
    # the ids a process writes to, again and again (an append per step of a trace)
    return str(uuid.UUID(text))


def require_text(name: str, value: Any, *, optional: bool = False) -> str | None:
    """Check a text argument (user_id, thread_id, ...): a non-empty string without NUL."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidTraceData(f"{name} must be a non-empty string, got {value!r}")
    if "\x00" in value:
        raise InvalidTraceData(f"{name} must not contain NUL characters")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidTraceData(f"{name} is not valid Unicode text: {exc}") from exc
    if size > MAX_TEXT_BYTES:
        raise InvalidTraceData(
            f"{name} is {size:,} bytes as UTF-8, over the limit of {MAX_TEXT_BYTES:,} bytes"
        )
    return value


def require_status(status: Any, *, readable: bool = False) -> str:
    """A status a trace can be given (running, completed, failed, interrupted), or with
    ``readable`` one it can read as (also abandoned: running, and not heard from)."""
    allowed = STATUSES if readable else WRITABLE_STATUSES
    if not isinstance(status, str) or status not in allowed:
        raise InvalidTraceData(f"status must be one of {', '.join(allowed)}; got {status!r}")
    return status


def require_int(name: str, value: Any, *, minimum: int | None = None, maximum: int = 2**31 - 1) -> int:
    """An integer argument (not a bool) within [minimum, maximum]."""
    low = -(2**31) if minimum is None else minimum
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= maximum:
        raise InvalidTraceData(f"{name} must be an integer from {low:,} to {maximum:,}, got {value!r}")
    return value


def require_limit(limit: Any, offset: Any = 0) -> tuple[int, int]:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= MAX_LIMIT:
        raise InvalidTraceData(f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidTraceData(f"offset must be a non-negative integer, got {offset!r}")
    return limit, offset


def metadata_param(metadata: Any) -> Jsonb:
    if metadata is None:
        return Jsonb({})
    if not isinstance(metadata, dict):
        raise InvalidTraceData(f"metadata must be a dict, got {type(metadata).__name__}")
    return Jsonb(to_jsonable(metadata))
