"""The HTTP API: the seed's ``/automation/traces`` routes and more, on FastAPI.

Run it with ``python -m tracedb serve`` or ``uvicorn tracedb.api:app``; it works on the async
store (:class:`tracedb.AsyncAutomationTraceDB`), opened when the server starts.

Who a request acts as:

* With an API key configured (``python -m tracedb api-key create``), every request under
  ``/automation`` needs ``Authorization: Bearer <key>``. A key's requests read, change and
  delete only its user's traces (``db.as_user``); a ``user_id`` in a body or query must be
  that user. An admin key sees every user's traces.
* With none, the server answers only clients on the loopback interface, as the local user
  (``TRACEDB_USER``, else ``local``); ``no_auth`` (``serve --no-auth``) lets other
  addresses in, still as the local user.

Errors are JSON ``{"detail": ...}``: 401 (no or unknown key), 403 (another user's id), 404
(no such trace, or another user's), 413 (a body over the limit), 415 (a body that is not
JSON), 422 (malformed input), 503 (database unreachable). No database text reaches a client.

Settings (arguments of :func:`create_app`, else environment): ``TRACEDB_URL``,
``TRACEDB_CORS_ORIGINS`` (comma-separated origins; none by default),
``TRACEDB_MAX_BODY_BYTES`` (default 16 MiB), ``TRACEDB_API_NO_AUTH=1``, ``TRACEDB_USER``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio
import psycopg
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from pydantic import BeforeValidator, WithJsonSchema
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.routing import Match

from . import api_models as m
from .aio import AsyncAutomationTraceDB
from .core import local_user
from .errors import (
    AccessDenied,
    DatabaseUnavailable,
    InvalidTraceData,
    QueryTimeout,
    TraceDBError,
    TraceNotFound,
)
from .filters import is_empty_filter
from .keys import ApiKey
from .limits import MAX_LIMIT, MAX_TEXT_BYTES
from .models import TraceFilter
from .retention import RetentionPolicy, prune_periodically

log = logging.getLogger("tracedb.api")

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
# Largest offset accepted: beyond it an offset costs more than any client should ask of the
# server (use the cursor).
MAX_OFFSET = 1_000_000
# Bodies above this are parsed off the event loop, so one big request does not stall others.
PARSE_IN_THREAD_BYTES = 256 * 1024
# How often a server without keys looks again whether one was made.
KEY_CHECK_SECONDS = 5.0


class JSONBody(JSONResponse):
    """A JSON response rendered once, compactly. Text the request brought in can hold lone
    surrogates (``"\\ud800"`` in a JSON body), which UTF-8 cannot encode: such a body is
    sent with ASCII escapes instead."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        try:
            return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


class ApiError(HTTPException):
    """An error answered as ``{"detail": ...}`` with its status."""


# -- settings and state --------------------------------------------------------------------


@dataclass
class Settings:
    url: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    no_auth: bool = False
    local_user: str = "local"

    @classmethod
    def from_env(cls, **given: Any) -> Settings:
        env = os.environ
        origins = given.get("cors_origins")
        if origins is None:
            origins = [o.strip() for o in env.get("TRACEDB_CORS_ORIGINS", "").split(",") if o.strip()]
        max_body = given.get("max_body_bytes")
        if max_body is None:
            raw = env.get("TRACEDB_MAX_BODY_BYTES") or str(DEFAULT_MAX_BODY_BYTES)
            try:
                max_body = int(raw)
            except ValueError as exc:
                raise ValueError(f"TRACEDB_MAX_BODY_BYTES must be a number of bytes, got {raw!r}") from exc
        if max_body < 1:
            raise ValueError("the body limit must be at least 1 byte")
        no_auth = given.get("no_auth")
        if no_auth is None:
            no_auth = env.get("TRACEDB_API_NO_AUTH", "").lower() in ("1", "true", "yes")
        return cls(
            url=given.get("url") or env.get("TRACEDB_URL") or None,
            cors_origins=list(origins),
            max_body_bytes=max_body,
            no_auth=bool(no_auth),
            local_user=given.get("local_user") or local_user(env),
        )


class ServerState:
    """The open store and whether requests must bring a key."""

    def __init__(self, settings: Settings, db: AsyncAutomationTraceDB) -> None:
        self.settings = settings
        self.db = db
        self.keys_required = False
        self._checked_at = 0.0

    async def require_keys(self) -> bool:
        """True once any key exists. A server started without one looks again every few
        seconds, so that making the first key locks the API without a restart; once keys
        are required they stay required until the server restarts."""
        if not self.keys_required and time.monotonic() - self._checked_at >= KEY_CHECK_SECONDS:
            self.keys_required = await self.db.has_api_keys()
            self._checked_at = time.monotonic()
        return self.keys_required


@dataclass(frozen=True)
class Caller:
    """Who a request acts as: the store it may use, and the user its writes default to."""

    db: AsyncAutomationTraceDB
    key: ApiKey | None = None

    @property
    def default_user(self) -> str | None:
        # A user's view writes as its user whatever is given; an admin key writes as its own
        # user unless the body names another.
        return self.key.user_id if self.key is not None and self.key.admin else None

    def check_user(self, user_id: str | None) -> None:
        """A user_id given in a query must be the caller's own (unless admin)."""
        scope = self.db.user_scope
        if user_id is not None and scope is not None and user_id != scope:
            raise AccessDenied(f"user_id {user_id!r} is not the user of this key ({scope!r})")


def _state(request: Request) -> ServerState:
    return request.app.state.tracedb


_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_bearer = HTTPBearer(auto_error=False, description="an API key from `python -m tracedb api-key create`")


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def caller(request: Request, _: Annotated[Any, Depends(_bearer)] = None) -> Caller:
    """The store a request may use (a dependency of every ``/automation`` route)."""
    state = _state(request)
    if await state.require_keys():
        header = request.headers.get("authorization")
        if not header:
            raise ApiError(401, "an API key is required: send Authorization: Bearer <key>", _CHALLENGE)
        scheme, _sep, secret = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise ApiError(401, "the Authorization header must be: Bearer <key>", _CHALLENGE)
        key = await state.db.authenticate(secret.strip())
        if key is None:
            raise ApiError(401, "unknown or revoked API key", _CHALLENGE)
        return Caller(state.db if key.admin else state.db.as_user(key.user_id), key)
    client = request.client.host if request.client else None
    if not state.settings.no_auth and not _is_loopback(client):
        raise ApiError(
            403,
            "no API key is configured, so this server answers only on this machine; "
            "make one with `python -m tracedb api-key create --user <user>`",
        )
    return Caller(state.db.as_user(state.settings.local_user))


CallerDep = Annotated[Caller, Depends(caller)]


# -- request bodies: JSON only, bounded, parsed safely -------------------------------------


async def read_json_body(request: Request) -> None:
    """Read, limit and parse a request's body before FastAPI looks at it.

    Over the limit is a 413, a body that is not declared as JSON a 415 (so that no form on
    another site can post here), and JSON that cannot be parsed — malformed, nested deeper
    than Python can follow, an integer of thousands of digits — a 422, never a 500.
    """
    limit = _state(request).settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the body is larger than the limit of {limit:,} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the body is larger than the limit of {limit:,} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # what FastAPI reads next, instead of the consumed stream
    if not body:
        return
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not (media == "application/json" or (media.startswith("application/") and media.endswith("+json"))):
        raise ApiError(415, "the body must be JSON, sent with Content-Type: application/json")
    try:
        if len(body) > PARSE_IN_THREAD_BYTES:
            parsed = await anyio.to_thread.run_sync(json.loads, body)
        else:
            parsed = json.loads(body)
    except RecursionError as exc:
        raise ApiError(422, "the JSON body is nested too deeply") from exc
    except ValueError as exc:  # malformed JSON, bad UTF-8, an integer over Python's digit limit
        raise ApiError(422, f"the body is not valid JSON: {exc}") from exc
    request._json = parsed


class JSONRoute(APIRoute):
    """A route whose JSON body is read by :func:`read_json_body`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def route_handler(request: Request) -> Response:
            await read_json_body(request)
            return await handler(request)

        return route_handler


# -- errors ---------------------------------------------------------------------------------

_STATUS: list[tuple[type[BaseException], int]] = [
    (TraceNotFound, 404),
    (AccessDenied, 403),
    (InvalidTraceData, 422),
    (QueryTimeout, 503),
    (DatabaseUnavailable, 503),
]


def error_status(exc: TraceDBError) -> tuple[int, str]:
    """The status and the message a client gets for a named error. The database's own text
    never reaches a client: an error caused by the database gets a message of ours."""
    cause = exc.__cause__
    if isinstance(cause, psycopg.errors.ProgramLimitExceeded):
        return 422, "a value is too large for the database (an id, a name or an entry over its limit)"
    status = next((code for cls, code in _STATUS if isinstance(exc, cls)), 500)
    if isinstance(exc, DatabaseUnavailable):
        return status, "the database is unreachable; try again later"
    if isinstance(exc, QueryTimeout):
        return status, "the database cancelled the statement (time limit); try a narrower query"
    if isinstance(cause, psycopg.Error):
        return status, "the database refused the data" if status == 422 else "the database failed the request"
    return status, str(exc)


def _validation_items(errors: Any) -> list[dict[str, Any]]:
    # Only where and what: the offending input is not echoed (it may be megabytes, or hold
    # text that cannot be encoded).
    return [
        {
            "loc": [p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in errors
    ]


def _allowed_methods(request: Request) -> list[str]:
    scope = {**request.scope, "method": "\x00"}  # no route has this method: path matches only
    routes = [r for r in request.app.router.routes if r.matches(scope)[0] is Match.PARTIAL]
    if not routes:
        return []
    # The first route on the path decides it, as routing does: /automation/traces/count is
    # the count's path, not a trace id.
    path = getattr(routes[0], "path", None)
    methods: set[str] = set()
    for route in routes:
        if getattr(route, "path", None) == path:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TraceDBError)
    async def named_error(request: Request, exc: TraceDBError) -> Response:
        status, message = error_status(exc)
        if status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONBody({"detail": message}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return JSONBody({"detail": _validation_items(exc.errors())}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names the methods of the first route on the path only; a path served
            # by several routes (GET, POST and DELETE /automation/traces) allows them all.
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return JSONBody({"detail": exc.detail}, status_code=exc.status_code, headers=headers or None)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONBody({"detail": "internal error"}, status_code=500)


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        401: "no API key, or an unknown or revoked one",
        403: "a user id other than the key's",
        404: "no such trace (or another user's)",
        413: "the body is over the limit",
        415: "the body is not JSON",
        422: "malformed input",
        503: "the database is unreachable",
    }
    return {code: {"model": m.ErrorBody, "description": text[code]} for code in codes}


_COMMON = (401, 403, 422, 503)
_WITH_BODY = (*_COMMON, 413, 415)


# -- query filters --------------------------------------------------------------------------

FILTER_PARAMS = frozenset(
    {
        "user_id",
        "provider_id",
        "thread_id",
        "name",
        "status",
        "since",
        "until",
        "node",
        "text",
        "contains",
        "trace_id",
    }
)


def only_params(*allowed: str) -> Callable[[Request], None]:
    """A dependency refusing query parameters a route does not know: a misspelt filter must
    not be ignored (a delete would then match more than asked)."""
    names = FILTER_PARAMS.union(allowed)

    def check(request: Request) -> None:
        unknown = sorted(set(request.query_params.keys()) - names)
        if unknown:
            raise ApiError(422, f"unknown query parameters: {', '.join(unknown)[:500]}")

    return check


def _iso_time(value: Any) -> Any:
    # Only ISO 8601 text: pydantic would also read "0.5" as seconds since 1970.
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError("must be an ISO 8601 time such as 2026-01-31T12:00:00Z, or a date") from exc
    return value


IsoTime = Annotated[
    datetime,
    BeforeValidator(_iso_time),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]}
    ),
]


def _aware(value: datetime | None) -> datetime | None:
    # A time without a zone is UTC (converting from the server's local zone could overflow
    # for year 1 or 9999).
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _parse_contains(raw: str | None) -> Any:
    if raw is None or raw == "":
        return None
    try:
        value = json.loads(raw)
    except RecursionError as exc:
        raise ApiError(422, "contains is nested too deeply") from exc
    except ValueError as exc:
        raise ApiError(422, f"contains is not valid JSON: {exc}") from exc
    if not isinstance(value, (dict, list)):
        raise ApiError(422, "contains must be a JSON object or array")
    return value


async def trace_filter(
    user_id: Annotated[str | None, Query(description="exact user; must be the key's user")] = None,
    provider_id: Annotated[str | None, Query(description="exact provider")] = None,
    thread_id: Annotated[str | None, Query(description="exact thread")] = None,
    name: Annotated[str | None, Query(description="case-insensitive prefix of the name")] = None,
    status: Annotated[
        list[m.ReadStatus] | None, Query(description="one status, or repeat for several")
    ] = None,
    since: Annotated[
        IsoTime | None, Query(description="updated at or after (ISO 8601; UTC if no zone)")
    ] = None,
    until: Annotated[IsoTime | None, Query(description="updated before (ISO 8601; UTC if no zone)")] = None,
    node: Annotated[str | None, Query(description="an entry from this node")] = None,
    text: Annotated[
        str | None, Query(description="full-text search in the entries (web-search syntax)")
    ] = None,
    contains: Annotated[
        str | None, Query(description='JSON an entry contains, e.g. {"node": "tools"}')
    ] = None,
    trace_id: Annotated[list[str] | None, Query(description="only these trace ids (repeat)")] = None,
) -> TraceFilter:
    """The store filter of a request's query parameters."""
    return TraceFilter(
        user_id=user_id,
        provider_id=provider_id,
        thread_id=thread_id,
        name=name,
        status=tuple(status) if status else None,
        since=_aware(since),
        until=_aware(until),
        node=node,
        text=text,
        contains=_parse_contains(contains),
        trace_ids=tuple(trace_id) if trace_id else None,
    )


FilterDep = Annotated[TraceFilter, Depends(trace_filter)]


def _writer(who: Caller, user_id: str | None) -> str | None:
    return user_id if user_id is not None else who.default_user


def _not_found(what: str) -> ApiError:
    return ApiError(404, what)


# -- the application --------------------------------------------------------------------------


def create_app(
    url: str | None = None,
    *,
    cors_origins: list[str] | None = None,
    max_body_bytes: int | None = None,
    no_auth: bool | None = None,
    local_user: str | None = None,
) -> FastAPI:
    """The HTTP API over the database at ``url`` (else ``TRACEDB_URL``, else the embedded
    server). The store opens when the server starts and closes when it stops."""
    settings = Settings.from_env(
        url=url,
        cors_origins=cors_origins,
        max_body_bytes=max_body_bytes,
        no_auth=no_auth,
        local_user=local_user,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = await AsyncAutomationTraceDB.open(settings.url)
        state = ServerState(settings, db)
        app.state.tracedb = state
        keys = await state.require_keys()
        log.info(
            "tracedb API on %s: %s",
            db.server.label,
            "API keys required"
            if keys
            else f"no API key configured; serving as user {settings.local_user!r}"
            + ("" if settings.no_auth else " to this machine only"),
        )
        policy = RetentionPolicy.from_env()
        pruning = None
        if policy is not None:
            log.info("retention: deleting %s, every %s", policy.describe(), policy.every)
            pruning = asyncio.create_task(prune_periodically(db, policy))
        try:
            yield
        finally:
            if pruning is not None:
                pruning.cancel()
            await db.close()

    app = FastAPI(
        title="tracedb",
        version="0.1.0",
        summary="Automation traces of LangGraph agents, stored in PostgreSQL",
        lifespan=lifespan,
        default_response_class=JSONBody,
        # Operation ids are the handlers' names (list_traces, save_trace, ...): stable names
        # for the generated TypeScript types.
        generate_unique_id_function=lambda route: route.name,
    )
    app.router.route_class = JSONRoute
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    _install_error_handlers(app)
    _add_routes(app)
    return app


def _add_routes(app: FastAPI) -> None:  # noqa: C901 - one function per route, flat
    tags = ["automation traces"]

    @app.get("/health", response_model=m.Health, responses=_responses(503), tags=["server"])
    async def health(request: Request) -> Response:
        """Whether the server and its database answer (no key needed)."""
        if await _state(request).db.ping():
            return JSONBody({"ok": True})
        return JSONBody({"ok": False, "detail": "the database is unreachable"}, status_code=503)

    @app.post(
        "/automation/traces",
        status_code=201,
        response_model=m.SavedTrace,
        responses=_responses(*_WITH_BODY),
        tags=tags,
    )
    async def save_trace(body: m.SaveTraceBody, who: CallerDep) -> Response:
        """Store a new trace of a thread (``save_trace``)."""
        tid = await who.db.save_trace(
            _writer(who, body.user_id), body.provider_id, body.thread_id, body.trace_data, body.name
        )
        return JSONBody(
            {"success": True, "trace_id": tid, "message": "Automation trace saved"}, status_code=201
        )

    @app.get(
        "/automation/traces/count",
        response_model=m.TraceCount,
        responses=_responses(*_COMMON),
        dependencies=[Depends(only_params())],
        tags=tags,
    )
    async def count_traces(flt: FilterDep, who: CallerDep) -> Response:
        """How many traces match the filters."""
        who.check_user(flt.user_id)
        return JSONBody({"success": True, "count": await who.db.count_traces(flt)})

    @app.get(
        "/automation/traces/thread/{thread_id}",
        response_model=m.TraceRow,
        responses=_responses(*_COMMON, 404),
        tags=tags,
    )
    async def get_trace_by_thread(thread_id: str, who: CallerDep) -> Response:
        """The thread's most recent trace, with its entries."""
        trace = await who.db.load_trace_by_thread(thread_id)
        if trace is None:
            raise _not_found("No trace found for this thread")
        return JSONBody(trace.to_dict())

    @app.put(
        "/automation/traces/thread/{thread_id}",
        response_model=m.UpsertedTrace,
        responses=_responses(*_WITH_BODY),
        tags=tags,
    )
    async def upsert_trace_by_thread(thread_id: str, body: m.UpsertTraceBody, who: CallerDep) -> Response:
        """Create the thread's trace or bring it to ``trace_data`` (``upsert_trace_by_thread``)."""
        tid = await who.db.upsert_trace_by_thread(
            _writer(who, body.user_id), body.provider_id, thread_id, body.trace_data, body.name
        )
        return JSONBody({"success": True, "trace_id": tid})

    @app.get(
        "/automation/traces/{trace_id}",
        response_model=m.TraceRow,
        responses=_responses(*_COMMON, 404),
        tags=tags,
    )
    async def get_trace(trace_id: str, who: CallerDep) -> Response:
        """A trace with its entries."""
        trace = await who.db.load_trace_by_id(trace_id)
        if trace is None:
            raise _not_found("Trace not found")
        return JSONBody(trace.to_dict())

    @app.get(
        "/automation/traces",
        response_model=m.TraceList,
        responses=_responses(*_COMMON),
        dependencies=[Depends(only_params("limit", "offset", "cursor"))],
        tags=tags,
    )
    async def list_traces(
        flt: FilterDep,
        who: CallerDep,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="matches to skip")] = 0,
        cursor: Annotated[
            str | None, Query(max_length=MAX_TEXT_BYTES, description="next_cursor of the previous page")
        ] = None,
    ) -> Response:
        """Matching traces without entries, most recently updated first."""
        who.check_user(flt.user_id)
        page = await who.db.list_traces(flt, limit=limit, cursor=cursor or None, offset=offset)
        rows = [s.to_dict() for s in page.items]
        return JSONBody(
            {"success": True, "traces": rows, "count": len(rows), "next_cursor": page.next_cursor}
        )

    @app.patch(
        "/automation/traces/{trace_id}",
        response_model=m.UpdatedTrace,
        responses=_responses(*_WITH_BODY, 404),
        tags=tags,
    )
    async def update_trace(trace_id: str, body: m.UpdateTraceBody, who: CallerDep) -> Response:
        """Rename, replace the entries, set the status or merge metadata: all or nothing."""
        if body.trace_id is not None and body.trace_id != trace_id:
            raise ApiError(422, "trace_id in the body is not the trace of the path")
        if all(v is None for v in (body.name, body.trace_data, body.status, body.metadata)):
            raise ApiError(422, "nothing to update: give name, trace_data, status or metadata")
        summary = await who.db.patch_trace(
            trace_id, name=body.name, trace_data=body.trace_data, status=body.status, metadata=body.metadata
        )
        if summary is None:
            raise _not_found("Trace not found")
        return JSONBody({"success": True, "message": "Trace updated", "trace": summary.to_dict()})

    @app.delete(
        "/automation/traces/{trace_id}",
        response_model=m.DeletedTrace,
        responses=_responses(*_COMMON, 404),
        tags=tags,
    )
    async def delete_trace(trace_id: str, who: CallerDep) -> Response:
        """Delete one trace and its entries."""
        if not await who.db.delete_trace(trace_id):
            raise _not_found("Trace not found")
        return JSONBody({"success": True, "message": "Trace deleted"})

    @app.delete(
        "/automation/traces",
        response_model=m.DeletedTraces,
        responses=_responses(*_COMMON),
        dependencies=[Depends(only_params("all"))],
        tags=tags,
    )
    async def delete_traces(
        flt: FilterDep,
        who: CallerDep,
        all: Annotated[bool, Query(description="needed to delete with no filter")] = False,  # noqa: A002
    ) -> Response:
        """Delete every matching trace (not one page). With no filter, only with all=true."""
        who.check_user(flt.user_id)
        if not all and is_empty_filter(flt):
            raise ApiError(422, "no filter given: pass all=true to delete every trace you can see")
        return JSONBody({"success": True, "deleted": await who.db.delete_traces(flt, allow_all=all)})

    @app.post(
        "/automation/traces/{trace_id}/entries",
        response_model=m.AppendedEntries,
        responses=_responses(*_WITH_BODY, 404),
        tags=tags,
    )
    async def append_entries(trace_id: str, body: m.AppendEntriesBody, who: CallerDep) -> Response:
        """Add entries at the end of a trace (and set its status)."""
        r = await who.db.append_entries(
            body.entries, trace_id=trace_id, status=body.status, batch_id=body.batch_id
        )
        return JSONBody(
            {
                "success": True,
                "trace_id": r.trace_id,
                "first_seq": r.first_seq,
                "entry_count": r.entry_count,
                "written": r.written,
                "duplicate": r.duplicate,
            }
        )


app = create_app()
"""The application for ``uvicorn tracedb.api:app``, configured from the environment."""


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    url: str | None = None,
    no_auth: bool = False,
    max_body_bytes: int | None = None,
) -> None:
    """Serve the API until interrupted (``python -m tracedb serve``)."""
    import uvicorn

    uvicorn.run(
        create_app(url, no_auth=no_auth, max_body_bytes=max_body_bytes),
        host=host,
        port=port,
        log_level="info",
    )
