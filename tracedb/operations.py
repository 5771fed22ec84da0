"""Every store operation, gathered: what ``AutomationTraceDB`` and ``AsyncAutomationTraceDB``
both are (see :mod:`tracedb.core` for how one generator serves both)."""

from __future__ import annotations

from .keys import KeyOperations
from .maintenance import MaintenanceOperations
from .reads import ReadOperations
from .writes import WriteOperations


class StoreOperations(ReadOperations, WriteOperations, MaintenanceOperations, KeyOperations):
    """Reads, writes, maintenance and API keys; a shell adds how statements run."""
