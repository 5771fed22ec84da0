"""Retention: how long traces are kept, as a policy a program, the CLI and the API server share.

``TRACEDB_RETENTION`` holds a policy such as ``30d`` (delete traces not updated for 30
days), ``30d keep=100`` (but keep each user's 100 most recent), ``7d status=completed``
(only completed ones) or ``90d every=6h`` (how often the API server prunes; default hourly).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .errors import InvalidTraceData
from .models import STATUSES

log = logging.getLogger("tracedb.retention")
ENV = "TRACEDB_RETENTION"
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str) -> timedelta:
    """An age such as ``30d``, ``12h``, ``90m``, ``45s`` or ``2w``.

    Raises:
        InvalidTraceData: ``text`` is not such an age.
    """
    match = _AGE.match(text) if isinstance(text, str) else None
    if not match or float(match.group(1)) <= 0:
        raise InvalidTraceData(f"{text!r} is not an age such as 30d, 12h, 90m, 45s or 2w")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


@dataclass(frozen=True)
class RetentionPolicy:
    """Delete traces not updated for ``older_than``, keeping each user's ``keep_last`` most
    recent, only those of ``status`` when given; a server applies it every ``every``."""

    older_than: timedelta
    keep_last: int = 0
    status: tuple[str, ...] | None = None
    every: timedelta = timedelta(hours=1)

    @classmethod
    def parse(cls, text: str) -> RetentionPolicy:
        """A policy from its text (see the module).

        Raises:
            InvalidTraceData: naming the part that is wrong.
        """
        parts = text.split()
        if not parts:
            raise InvalidTraceData(f"{ENV} is empty: give an age such as 30d")
        older_than = parse_age(parts[0])
        keep_last, status, every = 0, None, timedelta(hours=1)
        for part in parts[1:]:
            key, _, value = part.partition("=")
            if key == "keep" and value.isdigit():
                keep_last = int(value)
            elif key == "status" and value and all(s in STATUSES for s in value.split(",")):
                status = tuple(value.split(","))
            elif key == "every":
                every = parse_age(value)
            else:
                raise InvalidTraceData(
                    f"{part!r} in {ENV} is not keep=<number>, status=<{'|'.join(STATUSES)}> or every=<age>"
                )
        return cls(older_than, keep_last, status, every)

    @classmethod
    def from_env(cls) -> RetentionPolicy | None:
        """The policy in ``TRACEDB_RETENTION``, or None when it is not set."""
        text = os.environ.get(ENV, "").strip()
        return cls.parse(text) if text else None

    def describe(self) -> str:
        words = [f"traces not updated for {self.older_than}"]
        if self.status:
            words.append(f"of status {', '.join(self.status)}")
        if self.keep_last:
            words.append(f"keeping each user's {self.keep_last} most recent")
        return " ".join(words)


async def prune_periodically(db: Any, policy: RetentionPolicy) -> None:
    """Apply ``policy`` with an async store now and then every ``policy.every``, until
    cancelled. A failed round is logged and retried at the next one."""
    while True:
        try:
            n = await db.prune(policy.older_than, keep_last=policy.keep_last, status=policy.status)
            if n:
                log.info("retention: deleted %d %s", n, policy.describe())
        except Exception:  # noqa: BLE001 - the server keeps serving; the next round retries
            log.exception("retention: pruning failed; trying again in %s", policy.every)
        await asyncio.sleep(policy.every.total_seconds())
