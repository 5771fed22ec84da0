"""REST API over the store: ``python -m tracedb serve`` (Starlette, served by uvicorn).

Errors are JSON ``{"error": "..."}`` with 400 (bad input), 404 (no such trace) or 503
(database unreachable). With ``TRACEDB_API_TOKEN`` set, every request needs
``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .errors import DatabaseUnavailable, InvalidTraceData, TraceNotFound
from .models import TraceFilter

Handler = Callable[[Request], Awaitable[Response]]


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(json.loads(json.dumps(data, default=str)), status_code=status)


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _time(params: Any, key: str) -> datetime | None:
    raw = params.get(key)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidTraceData(f"{key} must be an ISO 8601 time, got {raw!r}") from exc
    return value if value.tzinfo else value.astimezone()


def filter_from_query(params: Any) -> TraceFilter:
    """A TraceFilter from query parameters (user, thread, name, status, node, text,
    contains, since, until)."""
    contains = None
    if params.get("contains"):
        try:
            contains = json.loads(params["contains"])
        except json.JSONDecodeError as exc:
            raise InvalidTraceData(f"contains is not valid JSON: {exc}") from exc
    statuses = params.getlist("status") if hasattr(params, "getlist") else None
    return TraceFilter(
        user_id=params.get("user") or None,
        thread_id=params.get("thread") or None,
        name=params.get("name") or None,
        status=tuple(statuses) if statuses else None,
        node=params.get("node") or None,
        text=params.get("text") or None,
        contains=contains,
        since=_time(params, "since"),
        until=_time(params, "until"),
    )


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidTraceData(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidTraceData("the request body must be a JSON object")
    return body


def create_app(db: Any, token: str | None = None) -> Starlette:
    """The REST application over ``db`` (an AutomationTraceDB)."""
    token = token if token is not None else os.environ.get("TRACEDB_API_TOKEN") or None

    def guarded(fn: Handler) -> Handler:
        async def handler(request: Request) -> Response:
            if token:
                given = request.headers.get("authorization", "")
                if not hmac.compare_digest(given, f"Bearer {token}"):
                    return _error("missing or wrong bearer token", 401)
            try:
                return await fn(request)
            except TraceNotFound as exc:
                return _error(str(exc), 404)
            except InvalidTraceData as exc:
                return _error(str(exc), 400)
            except DatabaseUnavailable as exc:
                return _error(str(exc), 503)

        return handler

    def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
        return run_in_threadpool(fn, *args, **kwargs)

    async def health(request: Request) -> Response:
        ok = await call(db.ping)
        return _json({"ok": ok, "database": db.server.label}, 200 if ok else 503)

    async def list_traces(request: Request) -> Response:
        p = request.query_params
        try:
            limit = int(p.get("limit", 50))
        except ValueError as exc:
            raise InvalidTraceData("limit must be an integer") from exc
        page = await call(db.list_traces, filter_from_query(p), limit, p.get("cursor") or None)
        return _json({"items": [s.to_dict() for s in page.items], "next_cursor": page.next_cursor})

    async def count(request: Request) -> Response:
        return _json({"count": await call(db.count_traces, filter_from_query(request.query_params))})

    async def create(request: Request) -> Response:
        b = await _body(request)
        tid = await call(
            db.save_trace,
            b.get("user_id"),
            b.get("provider_id"),
            b.get("thread_id"),
            b.get("trace_data", []),
            b.get("name"),
        )
        return _json({"id": tid}, 201)

    async def delete_matching(request: Request) -> Response:
        p = request.query_params
        n = await call(db.delete_traces, filter_from_query(p), allow_all=p.get("all") == "true")
        return _json({"deleted": n})

    async def get_trace(request: Request) -> Response:
        trace = await call(db.load_trace_by_id, request.path_params["trace_id"])
        if trace is None:
            raise TraceNotFound(f"no trace has the id {request.path_params['trace_id']!r}")
        return _json(trace.to_dict())

    async def patch_trace(request: Request) -> Response:
        tid, b = request.path_params["trace_id"], await _body(request)
        if not await call(db.update_trace, tid, b.get("name"), b.get("trace_data")):
            raise TraceNotFound(f"no trace has the id {tid!r}")
        if b.get("status") is not None:
            await call(db.set_status, tid, b["status"])
        if b.get("metadata") is not None:
            await call(db.update_metadata, tid, b["metadata"])
        return _json((await call(db.get_summary, tid)).to_dict())

    async def delete_trace(request: Request) -> Response:
        tid = request.path_params["trace_id"]
        if not await call(db.delete_trace, tid):
            raise TraceNotFound(f"no trace has the id {tid!r}")
        return Response(status_code=204)

    async def append(request: Request) -> Response:
        b = await _body(request)
        r = await call(
            db.append_entries,
            b.get("entries"),
            trace_id=request.path_params["trace_id"],
            status=b.get("status"),
        )
        return _json({"trace_id": r.trace_id, "first_seq": r.first_seq, "entry_count": r.entry_count})

    async def get_thread(request: Request) -> Response:
        trace = await call(db.load_trace_by_thread, request.path_params["thread_id"])
        if trace is None:
            raise TraceNotFound(f"thread {request.path_params['thread_id']!r} has no trace")
        return _json(trace.to_dict())

    async def upsert_thread(request: Request) -> Response:
        b = await _body(request)
        tid = await call(
            db.upsert_trace_by_thread,
            b.get("user_id"),
            b.get("provider_id"),
            request.path_params["thread_id"],
            b.get("trace_data"),
            b.get("name"),
        )
        return _json({"id": tid})

    routes = [
        Route("/api/health", guarded(health), methods=["GET"]),
        Route("/api/traces", guarded(list_traces), methods=["GET"]),
        Route("/api/traces", guarded(create), methods=["POST"]),
        Route("/api/traces", guarded(delete_matching), methods=["DELETE"]),
        Route("/api/traces/count", guarded(count), methods=["GET"]),
        Route("/api/traces/{trace_id}", guarded(get_trace), methods=["GET"]),
        Route("/api/traces/{trace_id}", guarded(patch_trace), methods=["PATCH"]),
        Route("/api/traces/{trace_id}", guarded(delete_trace), methods=["DELETE"]),
        Route("/api/traces/{trace_id}/entries", guarded(append), methods=["POST"]),
        Route("/api/threads/{thread_id}/trace", guarded(get_thread), methods=["GET"]),
        Route("/api/threads/{thread_id}/trace", guarded(upsert_thread), methods=["PUT"]),
    ]
    return Starlette(routes=routes)


def serve(db: Any, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve the REST API until interrupted."""
    import uvicorn

    uvicorn.run(create_app(db), host=host, port=port, log_level="info")
