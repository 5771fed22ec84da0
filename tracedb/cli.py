"""``python -m tracedb``: set up the database and work with stored traces from a terminal."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from . import retention
from .core import local_user
from .errors import TraceDBError
from .models import TraceFilter


def _filter_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user", help="exact user id")
    p.add_argument("--thread", help="exact thread id")
    p.add_argument("--name", help="name prefix (case-insensitive)")
    p.add_argument("--status", action="append", help="status; repeat for several")
    p.add_argument("--node", help="traces with an entry from this node")
    p.add_argument("--text", help="full-text search in entries")
    p.add_argument("--contains", help='JSON an entry must contain, e.g. \'{"node": "tools"}\'')
    p.add_argument("--since", type=datetime.fromisoformat, help="updated at or after (ISO 8601)")
    p.add_argument("--until", type=datetime.fromisoformat, help="updated before (ISO 8601)")


def filter_from_args(args: argparse.Namespace) -> TraceFilter:
    contains = None
    if getattr(args, "contains", None):
        try:
            contains = json.loads(args.contains)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"--contains is not valid JSON: {exc}") from exc

    def aware(d: datetime | None) -> datetime | None:
        return d.astimezone() if d is not None and d.tzinfo is None else d

    return TraceFilter(
        user_id=args.user,
        thread_id=args.thread,
        name=args.name,
        status=tuple(args.status) if args.status else None,
        node=args.node,
        text=args.text,
        contains=contains,
        since=aware(args.since),
        until=aware(args.until),
    )


def parse_age(text: str) -> timedelta:
    """An age such as ``30d``, ``12h``, ``90m``, ``45s`` or ``2w`` (see tracedb.retention)."""
    try:
        return retention.parse_age(text)
    except TraceDBError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tracedb", description=__doc__)
    parser.add_argument("--url", help="libpq URL (default: TRACEDB_URL, else the embedded server)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="apply the database migrations")
    sub.add_parser("status", help="server, version, tables with row counts, indexes, functions")
    p = sub.add_parser("list", help="list traces, newest first")
    _filter_args(p)
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--cursor", help="next_cursor printed by the previous page")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p = sub.add_parser("count", help="count matching traces")
    _filter_args(p)
    p = sub.add_parser("show", help="print one trace as JSON")
    p.add_argument("trace_id")
    p = sub.add_parser("export", help="write matching traces as json, jsonl or csv")
    _filter_args(p)
    p.add_argument("--format", choices=("json", "jsonl", "csv"), default="jsonl")
    p.add_argument("--output", "-o", help="file to write (default: standard output)")
    p = sub.add_parser(
        "upsert",
        help="make a thread's trace exactly the JSON given (a list of entries, or "
        '{"automation_trace": [...]}); create it if the thread has none',
    )
    p.add_argument("thread_id")
    p.add_argument("file", nargs="?", default="-", help="JSON file (default: standard input)")
    p.add_argument("--user", default=None, help="the trace's user (default: TRACEDB_USER, else local)")
    p.add_argument("--provider", default=None, help="provider id")
    p.add_argument("--name", default=None, help="set the trace's name (default: keep it)")
    p = sub.add_parser("rename", help="rename a trace")
    p.add_argument("trace_id")
    p.add_argument("new_name")
    p = sub.add_parser("delete", help="delete one trace, or every trace matching the filters")
    p.add_argument("trace_id", nargs="?")
    _filter_args(p)
    p.add_argument("--all", action="store_true", help="allow deleting with no filter at all")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p = sub.add_parser("prune", help="delete traces not updated for a while (retention)")
    p.add_argument("--older-than", required=True, type=parse_age, help="age such as 30d, 12h, 90m")
    p.add_argument("--keep-last", type=int, default=0, help="keep each user's N most recent traces")
    p.add_argument("--status", action="append", help="only traces of this status; repeat for several")
    p.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    sub.add_parser("index", help="index for search what writers left unindexed")
    p = sub.add_parser("serve", help="serve the HTTP API (/automation/traces)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument(
        "--no-auth",
        action="store_true",
        help="with no API key configured, serve other addresses too (as the local user)",
    )
    p.add_argument("--max-body-bytes", type=int, help="largest request body (default 16 MiB)")
    p = sub.add_parser("api-key", help="make, list or revoke API keys of the HTTP API")
    keys = p.add_subparsers(dest="key_command", required=True)
    k = keys.add_parser("create", help="make a key; prints the secret (shown only now) on the last line")
    k.add_argument("--user", required=True, help="the user whose traces the key reads and changes")
    k.add_argument("--admin", action="store_true", help="the key sees every user's traces")
    k.add_argument("--label", help="what the key is for")
    k = keys.add_parser("list", help="list keys (never their secrets)")
    k.add_argument("--user", help="only this user's keys")
    k = keys.add_parser("revoke", help="revoke a key: requests with it are refused from now on")
    k.add_argument("key_id")
    sub.add_parser("openapi", help="print the HTTP API's OpenAPI document (no database needed)")
    p = sub.add_parser("demo", help="load realistic demo traces")
    p.add_argument("--traces", type=int, default=300)
    p.add_argument("--seed", type=int, default=7)
    return parser


def _print_status(db: Any) -> None:
    st = db.server_status()
    print(f"server:   {st.label}")
    print(f"version:  {st.version}")
    print(f"schema:   migrations {', '.join(st.migrations) or 'none'}")
    print("tables:")
    for name, rows in st.tables.items():
        print(f"  {name:<32} {rows:>12,} rows")
        for column in st.columns.get(name, []):
            print(f"      {column}")
    print("indexes:")
    for name in st.indexes:
        print(f"  {name}")
    print("functions:")
    for name in st.functions:
        print(f"  {name}")


def _print_seed_conversion(db: Any) -> None:
    from .migrations import seed_conversion

    with db.pool.connection() as conn:
        state = seed_conversion(conn)
    if state is not None:
        print(
            f"seed:     converted {state.converted:,} of {state.total:,} rows of the seed's automation_traces"
            f"{'' if state.finished else ' so far'}; the original is kept as {state.table} "
            "(drop it once you no longer need it)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    from .store import AutomationTraceDB

    if args.command == "openapi":
        from .api import create_app

        print(json.dumps(create_app(args.url).openapi(), indent=2, ensure_ascii=False))
        return 0
    try:
        with AutomationTraceDB(args.url) as db:
            if args.command == "serve":
                return _serve(db, args)
            return _run(db, args)
    except TraceDBError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _serve(db: Any, args: argparse.Namespace) -> int:
    """Check who the server may answer before serving: with no API key configured, only this
    machine (unless --no-auth)."""
    try:
        from .api import serve
    except ModuleNotFoundError as exc:  # a base install leaves the HTTP API out
        print(f"error: the HTTP API needs {exc.name}: pip install 'tracedb[api]'", file=sys.stderr)
        return 2

    loopback = args.host in ("127.0.0.1", "::1", "localhost") or args.host.startswith("127.")
    if not loopback and not args.no_auth and not db.has_api_keys():
        print(
            f"error: no API key is configured, so the API serves only 127.0.0.1, not {args.host}: "
            "make a key with `python -m tracedb api-key create --user <user>`, "
            "or pass --no-auth to serve every address as the local user",
            file=sys.stderr,
        )
        return 2
    url = db.server.url
    db.close()  # the server opens its own async store
    serve(args.host, args.port, url=url, no_auth=args.no_auth, max_body_bytes=args.max_body_bytes)
    return 0


def _api_key(db: Any, args: argparse.Namespace) -> int:
    if args.key_command == "create":
        key, secret = db.create_api_key(args.user, admin=args.admin, label=args.label)
        kind = "admin key (every user's traces)" if key.admin else f"key for the traces of {key.user_id!r}"
        print(f"created {kind}, id {key.id}")
        print("the secret is shown only now; send it as: Authorization: Bearer <secret>")
        print(secret)
    elif args.key_command == "list":
        for key in db.list_api_keys(args.user):
            state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
            used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
            print(
                f"{key.id}  {key.user_id:<20} {'admin' if key.admin else 'user':<5}  {state:<24} "
                f"created {key.created_at:%Y-%m-%d %H:%M}  used {used}  {key.label or ''}"
            )
    elif args.key_command == "revoke":
        if not db.revoke_api_key(args.key_id):
            print(f"error: no active key has the id {args.key_id!r}", file=sys.stderr)
            return 1
        print(f"revoked {args.key_id}")
    return 0


def _run(db: Any, args: argparse.Namespace) -> int:
    from . import export

    if args.command == "init":
        print(f"schema is up to date on {db.server.label}")
        _print_seed_conversion(db)
    elif args.command == "status":
        _print_status(db)
        _print_seed_conversion(db)
    elif args.command == "list":
        page = db.list_traces(filter_from_args(args), limit=args.limit, cursor=args.cursor)
        for s in page.items:
            if args.json:
                print(json.dumps(s.to_dict(), default=str))
            else:
                print(
                    f"{s.id}  {s.status:<11} {s.entry_count:>6}  {s.updated_at:%Y-%m-%d %H:%M}  "
                    f"{s.user_id}  {s.thread_id}  {s.name or ''}"
                )
        if page.next_cursor:
            print(f"next_cursor: {page.next_cursor}", file=sys.stderr)
    elif args.command == "count":
        print(db.count_traces(filter_from_args(args)))
    elif args.command == "show":
        trace = db.load_trace_by_id(args.trace_id)
        if trace is None:
            print(f"error: no trace has the id {args.trace_id!r}", file=sys.stderr)
            return 1
        print(json.dumps(export.trace_to_dict(trace), indent=2, ensure_ascii=False))
    elif args.command == "export":
        out = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout
        try:
            n = export.write_traces(db, filter_from_args(args), args.format, out)
        finally:
            if args.output:
                out.close()
        print(f"exported {n} traces", file=sys.stderr)
    elif args.command == "upsert":
        return _upsert(db, args)
    elif args.command == "rename":
        if not db.rename_trace(args.trace_id, args.new_name):
            print(f"error: no trace has the id {args.trace_id!r}", file=sys.stderr)
            return 1
    elif args.command == "delete":
        return _delete(db, args)
    elif args.command == "prune":
        status = tuple(args.status) if args.status else None
        n = db.prune(args.older_than, keep_last=args.keep_last, status=status, dry_run=args.dry_run)
        verb = "would delete" if args.dry_run else "deleted"
        print(f"{verb} {n} trace{'s' if n != 1 else ''} not updated for {args.older_than}")
    elif args.command == "index":
        print(f"indexed {db.index_pending()} traces for search")
    elif args.command == "api-key":
        return _api_key(db, args)
    elif args.command == "demo":
        from .demo import load_demo

        n = load_demo(db, traces=args.traces, seed=args.seed)
        print(f"loaded {n} demo traces into {db.server.label}")
    return 0


def _upsert(db: Any, args: argparse.Namespace) -> int:
    try:
        if args.file == "-":
            text = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8") as f:
                text = f.read()
        data = json.loads(text)
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, an integer too long to read
        print(f"error: {args.file} is not valid JSON: {str(exc)[:200]}", file=sys.stderr)
        return 2
    user = args.user or local_user()
    trace_id = db.upsert_trace_by_thread(user, args.provider, args.thread_id, data, name=args.name)
    summary = db.get_summary(trace_id)
    count = summary.entry_count if summary is not None else 0
    print(f"{trace_id}  {count} entr{'y' if count == 1 else 'ies'}")
    return 0


def _delete(db: Any, args: argparse.Namespace) -> int:
    if args.trace_id:
        if not db.delete_trace(args.trace_id):
            print(f"error: no trace has the id {args.trace_id!r}", file=sys.stderr)
            return 1
        print("deleted 1 trace")
        return 0
    flt = filter_from_args(args)
    n = db.count_traces(flt)
    if not args.yes:
        if not sys.stdin.isatty():
            print(f"{n} traces match; pass --yes to delete them", file=sys.stderr)
            return 1
        if input(f"delete {n} traces? [y/N] ").strip().lower() != "y":
            return 1
    deleted = db.delete_traces(flt, allow_all=args.all)
    print(f"deleted {deleted} traces")
    return 0
