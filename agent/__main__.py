"""``python -m agent "message"``: run one turn of the agent headless and record its trace."""

from __future__ import annotations

import argparse
import logging
import sys
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from langchain_core.messages import AIMessage, AIMessageChunk

from . import build_graph, get_model, make_checkpointer, model_label, user_input
from .models import MODEL_ENV, ModelUnavailable


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agent", description=__doc__)
    parser.add_argument("message", nargs="+", help="what to ask the agent")
    parser.add_argument("--thread", help="conversation to continue (default: a new one)")
    parser.add_argument("--user", default="local", help="user id stored on the trace (default: local)")
    parser.add_argument("--name", help="trace name")
    parser.add_argument(
        "--model", help=f"chat model, e.g. openai:gpt-4o-mini (default: {MODEL_ENV}, else offline)"
    )
    parser.add_argument("--url", help="libpq URL (default: TRACEDB_URL, else the embedded server)")
    parser.add_argument("--stream", action="store_true", help="print the reply token by token as it arrives")
    return parser


def _reply_of(update: Any) -> str | None:
    """The text of the last tool-free AI message in a node's update, if any."""
    messages = update.get("messages") if isinstance(update, dict) else None
    replies = [m for m in messages or [] if isinstance(m, AIMessage) and not m.tool_calls]
    return replies[-1].text if replies else None


def run_turn(args: argparse.Namespace) -> int:
    """Run one turn; 0 when the reply was produced and fully recorded."""
    from tracedb import AutomationTraceDB, TraceDBError
    from tracedb.recorder import TraceRecorder

    model = get_model(args.model)
    thread_id = args.thread or f"cli-{uuid.uuid4().hex[:12]}"
    config = {"configurable": {"thread_id": thread_id}}
    reply: str | None = None
    streamed = False
    try:
        with AutomationTraceDB(args.url) as db, make_checkpointer(db.server.url) as checkpointer:
            graph = build_graph(model, checkpointer)
            recorder = TraceRecorder(db, user_id=args.user, provider_id=model_label(model), name=args.name)
            chunks = recorder.stream(
                graph, user_input(" ".join(args.message)), config, stream_mode=["messages", "updates"]
            )
            for mode, data in chunks:
                if mode == "messages" and args.stream:
                    chunk, meta = data
                    if (
                        isinstance(chunk, AIMessageChunk)
                        and meta.get("langgraph_node") == "model"
                        and chunk.text
                    ):
                        print(chunk.text, end="", flush=True)
                        streamed = True
                elif mode == "updates":
                    for update in data.values():
                        reply = _reply_of(update) or reply
            report = recorder.close()
    except (TraceDBError, psycopg.OperationalError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if streamed:
        print()
    elif reply is not None:
        print(reply)
    print(f"trace: {report.trace_id or recorder.trace_id}")
    print(f"thread: {recorder.thread_id}")
    for problem in report.errors:
        print(f"warning: {problem}", file=sys.stderr)
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m agent``; returns the exit status."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    # The pool logs every failed attempt while it retries; the final error says it once.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    args = build_parser().parse_args(argv)
    try:
        return run_turn(args)
    except ModelUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
