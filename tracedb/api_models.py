"""Request and response bodies of the HTTP API (:mod:`tracedb.api`), as pydantic models.

They describe the API in ``/openapi.json`` (which the TypeScript client's types are
generated from) and check request bodies. Responses are built from the store's own
``to_dict()`` and serialized once; the response models document them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .limits import MAX_TEXT_BYTES
from .models import STATUSES, WRITABLE_STATUSES

# trace_data as the seed sent it: a list of entries (any JSON values), or a dict holding that
# list under "automation_trace".
TraceData = list[Any] | dict[str, Any]
# Ids and names as the store takes them: non-empty text of at most MAX_TEXT_BYTES bytes as
# UTF-8 (the store also refuses blank text, NUL characters and longer UTF-8, and says so).
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_BYTES)]
# What a trace can be set to; and what it can read as (also "abandoned").
Status = Literal[WRITABLE_STATUSES]  # type: ignore[valid-type]
ReadStatus = Literal[STATUSES]  # type: ignore[valid-type]


class _Body(BaseModel):
    # A misspelt field (``trace_dat``) must be an error, not a silently empty trace.
    model_config = ConfigDict(extra="forbid")


class SaveTraceBody(_Body):
    """``POST /automation/traces``: a new trace of a thread."""

    thread_id: Text = Field(description="the conversation thread the trace belongs to")
    trace_data: TraceData = Field(default_factory=list, description="the entries")
    name: Text | None = None
    user_id: Text | None = Field(
        default=None, description="must be the key's user (an admin key may name anyone); default: the key's"
    )
    provider_id: Text | None = None


class UpsertTraceBody(_Body):
    """``PUT /automation/traces/thread/{thread_id}``: the thread's complete trace so far."""

    trace_data: TraceData = Field(description="the complete trace so far; the stored trace becomes this list")
    name: Text | None = Field(default=None, description="null keeps the stored name")
    user_id: Text | None = None
    provider_id: Text | None = None


class UpdateTraceBody(_Body):
    """``PATCH /automation/traces/{trace_id}``: what to change, all in one transaction."""

    trace_id: str | None = Field(
        default=None, description="the seed sent it; when given, must be the path's id"
    )
    name: Text | None = None
    trace_data: TraceData | None = Field(default=None, description="replaces every entry")
    status: Status | None = None
    metadata: dict[str, Any] | None = Field(default=None, description="keys merged into the trace's metadata")


class AppendEntriesBody(_Body):
    """``POST /automation/traces/{trace_id}/entries``: entries to add at the end."""

    entries: TraceData
    status: Status | None = Field(default=None, description="set in the same statement")
    batch_id: str | None = Field(
        default=None,
        description="a UUID naming this batch: sent again with the same id (after a lost reply),"
        " the batch is stored once and the answer says duplicate",
    )


class TraceSummaryRow(BaseModel):
    """A stored trace without its entries."""

    id: str
    user_id: str
    provider_id: str | None
    thread_id: str
    name: str | None
    created_at: datetime
    updated_at: datetime
    status: str
    entry_count: int
    metadata: dict[str, Any]
    error_count: int
    nodes: list[str]
    first_started_at: datetime | None
    last_ended_at: datetime | None
    total_duration_ms: float
    turns: int
    dropped_count: int
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    cost_usd: float | None
    running: list[dict[str, Any]]
    heartbeat_at: datetime | None
    duration_ms: float | None
    work_ms: float | None


class TraceRow(BaseModel):
    """A stored trace: the seed's row (``id`` to ``updated_at``), then tracedb's fields."""

    id: str
    user_id: str
    provider_id: str | None
    thread_id: str
    name: str | None
    trace_data: list[Any]
    created_at: datetime
    updated_at: datetime
    status: str
    entry_count: int
    metadata: dict[str, Any]
    error_count: int
    nodes: list[str]
    first_started_at: datetime | None
    last_ended_at: datetime | None
    total_duration_ms: float
    turns: int
    dropped_count: int
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    cost_usd: float | None
    running: list[dict[str, Any]]
    heartbeat_at: datetime | None
    duration_ms: float | None
    work_ms: float | None


class SavedTrace(BaseModel):
    success: bool = True
    trace_id: str
    message: str


class TraceList(BaseModel):
    success: bool = True
    traces: list[TraceSummaryRow]
    count: int = Field(description="how many traces this page holds")
    next_cursor: str | None = Field(description="pass as cursor for the next page; null on the last")


class UpdatedTrace(BaseModel):
    success: bool = True
    message: str
    trace: TraceSummaryRow


class DeletedTrace(BaseModel):
    success: bool = True
    message: str


class UpsertedTrace(BaseModel):
    success: bool = True
    trace_id: str


class AppendedEntries(BaseModel):
    success: bool = True
    trace_id: str
    first_seq: int
    entry_count: int
    written: int
    duplicate: bool = Field(
        default=False, description="the batch had been stored before: nothing was written"
    )


class TraceCount(BaseModel):
    success: bool = True
    count: int


class DeletedTraces(BaseModel):
    success: bool = True
    deleted: int


class Health(BaseModel):
    ok: bool
    detail: str | None = None


class ValidationItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every error: a message, or for malformed input the list of what is wrong and where."""

    detail: str | list[ValidationItem]
