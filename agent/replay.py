"""Replay a recorded run from one of its steps.

Every step the recorder stores carries the checkpoint it started from (the ``checkpoint_id``
column of ``db.get_entries``). Forking copies the thread's state at that checkpoint into a
new thread (LangGraph's time travel, into a thread of its own so the original conversation
stays as it was), optionally changes the state the step will see, and runs the graph from
there: the step and everything after it run again. The new run is recorded as a trace of
its own whose ``metadata["forked_from"]`` is ``{"trace_id": ..., "seq": ...}``.

Typical use::

    with make_checkpointer(url) as saver:
        graph = build_graph(checkpointer=saver)
        result = replay(db, graph, trace_id, seq)   # or with values={...} to edit the step's input

or, to stream the new run yourself (as the chat page does)::

    fork = fork_from_trace(db, graph, trace_id, seq, values=edited)
    recorder = TraceRecorder(db, user, metadata=fork.metadata)
    for chunk in recorder.stream(graph, None, fork.config, stream_mode=["messages", "updates"]):
        ...
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import BaseCheckpointSaver, copy_checkpoint


class ForkError(ValueError):
    """A run cannot be forked there: no such step or checkpoint, or a graph without a
    checkpointer."""


@dataclass(frozen=True)
class Fork:
    """A thread forked from a recorded step, ready to run.

    Attributes:
        thread_id: the new thread.
        config: the config to run it with (``graph.stream(None, fork.config)``).
        source_thread_id: the thread it was forked from.
        checkpoint_id: the checkpoint of that thread it was forked at.
        forked_from: ``{"trace_id": ..., "seq": ...}`` of the step, when forked from a trace.
    """

    thread_id: str
    config: dict[str, Any]
    source_thread_id: str
    checkpoint_id: str
    forked_from: dict[str, Any] = field(default_factory=dict)

    @property
    def metadata(self) -> dict[str, Any]:
        """What the new run's trace records about its origin (``TraceRecorder(metadata=)``)."""
        return {"forked_from": dict(self.forked_from)} if self.forked_from else {}


@dataclass(frozen=True)
class Replay:
    """A finished replay: the fork, the new trace, what the recorder stored, and the graph's
    last state values."""

    fork: Fork
    trace_id: str | None
    report: Any
    values: Any


def _saver(graph: Any) -> BaseCheckpointSaver:
    saver = getattr(graph, "checkpointer", None)
    if not isinstance(saver, BaseCheckpointSaver):
        raise ForkError("the graph has no checkpointer: compile it with one (build_graph(checkpointer=...))")
    return saver


def fork_thread(
    graph: Any,
    thread_id: str,
    checkpoint_id: str,
    *,
    new_thread_id: str | None = None,
    values: Mapping[str, Any] | None = None,
    as_node: str | None = None,
) -> dict[str, Any]:
    """Copy a thread's state at a checkpoint into a new thread, ready to run from there.

    The copy holds the checkpoint's state and the tasks it was about to run, without the
    writes those tasks made afterwards, so running it (``graph.invoke(None, config)``) runs
    them again. The original thread is not changed.

    Args:
        graph: the compiled graph, with the checkpointer the thread lives in.
        thread_id: the thread to fork.
        checkpoint_id: a checkpoint of its top-level graph (a step's ``checkpoint_id``).
        new_thread_id: the new thread's id; default ``<thread_id>-fork-<8 hex>``.
        values: a change to the state before the step runs, applied through the graph's
            reducers as ``graph.update_state`` does (for ``messages``, a message with the id
            of an existing one replaces it).
        as_node: the node the change is made as (default: the node that last wrote the
            state, so the same step runs next).

    Returns:
        The config of the new thread: ``{"configurable": {"thread_id": new_thread_id}}``.

    Raises:
        ForkError: no checkpointer, no such checkpoint, or a graph with delta channels
            (their state is spread over earlier checkpoints and cannot be copied alone).
    """
    saver = _saver(graph)
    if any(isinstance(ch, DeltaChannel) for ch in getattr(graph, "channels", {}).values()):
        raise ForkError("graphs with delta channels cannot be forked into a new thread")
    source = {"configurable": {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": checkpoint_id}}
    saved = saver.get_tuple(source)
    if saved is None:
        raise ForkError(f"thread {thread_id!r} has no checkpoint {checkpoint_id!r}")
    new_thread_id = new_thread_id or f"{thread_id}-fork-{uuid.uuid4().hex[:8]}"
    checkpoint = copy_checkpoint(saved.checkpoint)
    metadata: dict[str, Any] = {
        "source": "fork",
        "step": saved.metadata.get("step", -1),
        "parents": {},
        "forked_from": {"thread_id": thread_id, "checkpoint_id": checkpoint_id},
    }
    config = saver.put(
        {"configurable": {"thread_id": new_thread_id, "checkpoint_ns": ""}},
        checkpoint,
        metadata,  # type: ignore[arg-type]
        dict(checkpoint["channel_versions"]),
    )
    if values is not None:
        graph.update_state(config, dict(values), as_node=as_node)
    return {"configurable": {"thread_id": new_thread_id}}


def fork_from_trace(
    db: Any,
    graph: Any,
    trace_id: str,
    seq: int,
    *,
    values: Mapping[str, Any] | None = None,
    as_node: str | None = None,
    new_thread_id: str | None = None,
) -> Fork:
    """Fork the thread of a recorded trace at the checkpoint its step ``seq`` started from.

    Args:
        db: the trace store (``AutomationTraceDB``).
        graph: the compiled graph that made the trace, with its checkpointer.
        trace_id: the recorded trace.
        seq: the step (its ``seq`` in ``db.get_entries``) to run again.
        values, as_node, new_thread_id: as for :func:`fork_thread`.

    Returns:
        The :class:`Fork`; run it with ``graph.stream(None, fork.config)``, recording with
        ``TraceRecorder(db, user, metadata=fork.metadata)``.

    Raises:
        ForkError: no such trace or step, or a step recorded without a checkpoint.
    """
    summary = db.get_summary(trace_id)
    entry = db.get_entry(trace_id, seq) if summary is not None else None
    if summary is None or entry is None:
        raise ForkError(f"trace {trace_id!r} has no step {seq!r}")
    checkpoint_id = entry.get("checkpoint_id")
    if not checkpoint_id:
        raise ForkError(f"step {seq} of trace {trace_id} has no checkpoint: it ran without a checkpointer")
    config = fork_thread(
        graph, summary.thread_id, checkpoint_id, new_thread_id=new_thread_id, values=values, as_node=as_node
    )
    return Fork(
        thread_id=config["configurable"]["thread_id"],
        config=config,
        source_thread_id=summary.thread_id,
        checkpoint_id=checkpoint_id,
        forked_from={"trace_id": trace_id, "seq": seq},
    )


def replay(
    db: Any,
    graph: Any,
    trace_id: str,
    seq: int,
    *,
    values: Mapping[str, Any] | None = None,
    as_node: str | None = None,
    user_id: str | None = None,
    name: str | None = None,
    new_thread_id: str | None = None,
) -> Replay:
    """Run a recorded trace again from its step ``seq`` in a new thread, and record it.

    The new trace belongs to ``user_id`` (default: the original trace's user), is named
    ``name`` (default: ``"replay of <original name>"``) and records
    ``metadata["forked_from"] = {"trace_id": trace_id, "seq": seq}``.

    Raises:
        ForkError: see :func:`fork_from_trace`.
    """
    from tracedb.recorder import TraceRecorder

    fork = fork_from_trace(
        db, graph, trace_id, seq, values=values, as_node=as_node, new_thread_id=new_thread_id
    )
    original = db.get_summary(trace_id)
    recorder = TraceRecorder(
        db,
        user_id or original.user_id,
        provider_id=original.provider_id,
        name=name or f"replay of {original.name or original.thread_id}"[:200],
        metadata=fork.metadata,
    )
    last: Any = None
    for chunk in recorder.stream(graph, None, fork.config, stream_mode="values"):
        last = chunk
    report = recorder.close()
    return Replay(fork, recorder.trace_id, report, last)
