"""Named exceptions raised by tracedb. No psycopg exception reaches a caller for bad input."""


class TraceDBError(Exception):
    """Base class of every error tracedb raises on purpose."""


class InvalidTraceData(TraceDBError, ValueError):
    """Trace data or an argument is not something tracedb can store."""


class EntryTooLarge(InvalidTraceData):
    """One entry is larger, or nested deeper, than the configured limit."""


class TraceNotFound(TraceDBError, LookupError):
    """No trace has the given id."""


class DatabaseUnavailable(TraceDBError, ConnectionError):
    """The PostgreSQL server cannot be reached."""


class MigrationChanged(TraceDBError, RuntimeError):
    """A migration file differs from the version applied to this database."""


class QueryTimeout(TraceDBError, TimeoutError):
    """The database cancelled a statement: it ran over its time limit or was cancelled."""


class AccessDenied(TraceDBError, PermissionError):
    """The signed-in user may not act as, or on the traces of, another user."""
