"""tracedb: store LangGraph automation traces in PostgreSQL while the agent runs."""

from .astore import AsyncAutomationTraceDB
from .errors import DatabaseUnavailable, EntryTooLarge, InvalidTraceData, TraceDBError, TraceNotFound
from .models import STATUSES, AppendResult, Trace, TraceFilter, TracePage, TraceSummary
from .store import AutomationTraceDB

__all__ = [
    "STATUSES",
    "AppendResult",
    "AsyncAutomationTraceDB",
    "AutomationTraceDB",
    "DatabaseUnavailable",
    "EntryTooLarge",
    "InvalidTraceData",
    "Trace",
    "TraceDBError",
    "TraceFilter",
    "TraceNotFound",
    "TracePage",
    "TraceSummary",
]
