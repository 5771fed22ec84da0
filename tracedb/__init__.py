"""tracedb: store LangGraph automation traces in PostgreSQL while the agent runs.

Importing it loads psycopg and nothing of the dashboard (no pandas, numpy, plotly or
streamlit).
"""

from .aio import AsyncAutomationTraceDB
from .errors import (
    AccessDenied,
    DatabaseUnavailable,
    EntryTooLarge,
    InvalidTraceData,
    QueryTimeout,
    TraceDBError,
    TraceNotFound,
)
from .models import (
    STATUSES,
    AppendResult,
    Overview,
    ServerStatus,
    Trace,
    TraceFilter,
    TracePage,
    TraceSummary,
)
from .recorder import FlushReport, TraceRecorder
from .store import AutomationTraceDB

__all__ = [
    "AccessDenied",
    "STATUSES",
    "AppendResult",
    "AsyncAutomationTraceDB",
    "AutomationTraceDB",
    "DatabaseUnavailable",
    "EntryTooLarge",
    "FlushReport",
    "InvalidTraceData",
    "Overview",
    "QueryTimeout",
    "ServerStatus",
    "Trace",
    "TraceDBError",
    "TraceFilter",
    "TraceNotFound",
    "TracePage",
    "TraceRecorder",
    "TraceSummary",
]
