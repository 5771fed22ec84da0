"""Two traces side by side: their steps aligned by node and position, their content
compared without what changes from run to run anyway (timestamps, durations, ids)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from dashboard import frames, human
from tracedb import TraceSummary

# Keys that differ between two runs of the same work: when, how long, and generated ids.
VOLATILE_KEYS = frozenset(
    {
        "started_at",
        "ended_at",
        "duration_ms",
        "latency_ms",
        "elapsed_ms",
        "timestamp",
        "time",
        "created_at",
        "updated_at",
        "id",
        "run_id",
        "trace_id",
        "thread_id",
        "checkpoint_id",
        "tool_call_id",
        "message_id",
        "usage",
        "usage_metadata",
        "response_metadata",
        "seq",
        "turn",
    }
)
# What a step is (drawn in its own columns), as opposed to what it did.
IDENTITY_KEYS = frozenset({"node", "kind", "name"})
OPS = ("same", "changed", "only A", "only B", "before the fork")
# Alignment scores: matching the same node is worth more than leaving two steps apart, and
# a match with the same name and content is preferred among those.
GAP = 1
MATCH = 2
_NEVER = -(10**12)  # the score of pairing steps of different nodes
COLUMNS = [
    "step",
    "op",
    "node",
    "differs",
    "a_seq",
    "a_node",
    "a_name",
    "b_seq",
    "b_node",
    "b_name",
    "a_time",
    "b_time",
    "time_delta",
    "a_tokens",
    "b_tokens",
    "token_delta",
    "a_input",
    "b_input",
    "a_output",
    "b_output",
]


def _is_volatile(key: str) -> bool:
    return key in VOLATILE_KEYS or key.endswith("_at") or key.endswith("_id")


def content(value: Any) -> Any:
    """``value`` without timestamps, durations and ids, at any depth: what two runs of
    the same step should share."""
    if isinstance(value, Mapping):
        return {k: content(v) for k, v in value.items() if not _is_volatile(str(k))}
    if isinstance(value, list):
        return [content(v) for v in value]
    return value


def step_content(data: Mapping[str, Any]) -> dict[str, Any]:
    """What a step did (input, output, status, error and any other fields), without its
    identity and without volatile values."""
    return {k: v for k, v in content(data).items() if k not in IDENTITY_KEYS}


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _lane(data: Mapping[str, Any]) -> str:
    return str(data.get("node") or data.get("kind") or data.get("name") or "(none)")


def _codes(values: Sequence[str], table: dict[str, int]) -> np.ndarray:
    return np.array([table.setdefault(v, len(table)) for v in values], dtype=np.int64)


def align(a_keys: Sequence[tuple[str, str, str]], b_keys: Sequence[tuple[str, str, str]]) -> list[tuple]:
    """A global alignment (Needleman–Wunsch) of two step sequences.

    Each step is ``(node, name, content)``. Only steps of the same node are paired; a pair
    scores ``MATCH``, plus one for the same name and one for the same content; a step left
    without a partner costs ``GAP``. Among equal scores the earlier pairing wins. Returns
    ``(i, j)`` pairs in order, with None for the side that has no step.
    """
    n, m = len(a_keys), len(b_keys)
    tables: list[dict[str, int]] = [{}, {}, {}]
    a = [_codes([k[f] for k in a_keys], tables[f]) for f in range(3)]
    b = [_codes([k[f] for k in b_keys], tables[f]) for f in range(3)]
    # moves[i, j]: 0 pair (i-1, j-1), 1 step i-1 of A alone, 2 step j-1 of B alone
    moves = np.zeros((n + 1, m + 1), dtype=np.int8)
    moves[0, 1:] = 2
    moves[1:, 0] = 1
    # Integer scores: the running maximum below must compare exactly.
    k = np.arange(m + 1, dtype=np.int64)
    row = -GAP * k
    for i in range(1, n + 1):
        same_node = b[0] == a[0][i - 1]
        score = np.where(same_node, MATCH + (b[1] == a[1][i - 1]) + (b[2] == a[2][i - 1]), _NEVER)
        pair = np.full(m + 1, _NEVER, dtype=np.int64)
        pair[1:] = row[:-1] + score
        up = row - GAP
        best = np.maximum(pair, up)
        # a step of B alone extends the row from the left: H[j] = max(T[j], H[j-1] - GAP)
        new = np.maximum.accumulate(best + GAP * k) - GAP * k
        left = np.full(m + 1, _NEVER, dtype=np.int64)
        left[1:] = new[:-1] - GAP
        # Ties: a pair first; then B's step alone, which puts A's lone steps before B's.
        moves[i] = np.where((pair >= up) & (pair >= left), 0, np.where(left >= up, 2, 1))
        row = new
    out: list[tuple] = []
    i, j = n, m
    while i > 0 or j > 0:
        move = moves[i, j]
        if move == 0:
            out.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif move == 1:
            out.append((i - 1, None))
            i -= 1
        else:
            out.append((None, j - 1))
            j -= 1
    out.reverse()
    return out


def _duration(entry: Mapping[str, Any] | None) -> float | None:
    if entry is None:
        return None
    value = entry.get("duration_ms")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _tokens(row: Mapping[str, Any] | None) -> int | None:
    value = row.get("total_tokens") if row is not None else None
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _differences(ea: Mapping[str, Any], eb: Mapping[str, Any]) -> list[str]:
    """Which parts of two paired steps differ, timings and ids left out."""
    ca, cb = step_content(ea), step_content(eb)
    found = []
    if str(ea.get("name") or "") != str(eb.get("name") or ""):
        found.append("name")
    for key in ("input", "output", "error", "status"):
        if _text(ca.pop(key, None)) != _text(cb.pop(key, None)):
            found.append(key)
    if _text(ca) != _text(cb):
        found.append("other fields")
    return found


def fork_of(a: TraceSummary, b: TraceSummary) -> tuple[str, int] | None:
    """Where one of two traces was run again from a step of the other: ``("a", seq)`` when
    B is a replay of A from A's step ``seq``, ``("b", seq)`` the other way round, None when
    neither is."""
    for original, replay, side in ((a, b, "a"), (b, a, "b")):
        found = replay.forked_from
        if found is not None and found[0] == original.id and found[1] is not None:
            return side, found[1]
    return None


def align_traces(
    a: Sequence[Mapping[str, Any]],
    b: Sequence[Mapping[str, Any]],
    fork: tuple[str, int] | None = None,
) -> pd.DataFrame:
    """Two traces' entries (dicts with ``seq`` and ``data``, as from ``get_entries``),
    aligned step by step. An entry that is not a JSON object compares as its output.

    Each row is one aligned step: ``op`` is ``same`` (only timings or ids differ),
    ``changed``, ``only A`` or ``only B``; ``differs`` names what differs (name, input,
    output, error, status, other fields); times are shown with their difference, and the
    tokens each step's model used (``a_tokens``, ``b_tokens``) with theirs (``token_delta``,
    missing where neither side reported any).

    ``fork`` (from :func:`fork_of`): one side is a replay of the other from a step. The
    original's steps before that step were not run again: they are listed first as
    ``before the fork``, and the replay's steps are aligned with the original's from the
    step on (from the first entry of the same checkpoint: a node that wrote several entries
    runs again whole), so the replay's first step is paired with the one it reran.
    """
    da = [frames.entry_fields(r.get("data")) for r in a]
    db_ = [frames.entry_fields(r.get("data")) for r in b]

    def keys(entries: list[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
        return [(_lane(e), str(e.get("name") or ""), _text(step_content(e))) for e in entries]

    head: list[tuple[int | None, int | None]] = []
    start_a = start_b = 0
    if fork is not None:
        side, seq = fork
        rows_of = a if side == "a" else b
        cut = next((k for k, r in enumerate(rows_of) if r["seq"] >= seq), len(rows_of))
        # A replay runs again the whole step the entry belongs to, from the checkpoint it
        # started from: a node's earlier entries from that checkpoint were run again too.
        checkpoint = rows_of[cut].get("checkpoint_id") if cut < len(rows_of) else None
        if checkpoint:
            cut = next(k for k, r in enumerate(rows_of) if r.get("checkpoint_id") == checkpoint)
        if side == "a":
            head, start_a = [(k, None) for k in range(cut)], cut
        else:
            head, start_b = [(None, k) for k in range(cut)], cut
    pairs = head + [
        (i + start_a if i is not None else None, j + start_b if j is not None else None)
        for i, j in align(keys(da[start_a:]), keys(db_[start_b:]))
    ]

    rows: list[dict[str, Any]] = []
    for n, (i, j) in enumerate(pairs):
        ea = da[i] if i is not None else None
        eb = db_[j] if j is not None else None
        if ea is not None and eb is not None:
            differs = _differences(ea, eb)
            op = "changed" if differs else "same"
        else:
            differs = []
            op = "before the fork" if n < len(head) else "only A" if eb is None else "only B"
        ma, mb = _duration(ea), _duration(eb)
        ta, tb = _tokens(a[i] if i is not None else None), _tokens(b[j] if j is not None else None)
        rows.append(
            {
                "step": len(rows) + 1,
                "op": op,
                "differs": ", ".join(differs),
                "node": _lane(ea if ea is not None else eb),  # type: ignore[arg-type]
                "a_seq": a[i]["seq"] if i is not None else None,
                "a_node": _lane(ea) if ea is not None else "",
                "a_name": str(ea.get("name") or "") if ea is not None else "",
                "b_seq": b[j]["seq"] if j is not None else None,
                "b_node": _lane(eb) if eb is not None else "",
                "b_name": str(eb.get("name") or "") if eb is not None else "",
                "a_time": human.duration(ma) if ea is not None else "",
                "b_time": human.duration(mb) if eb is not None else "",
                "time_delta": human.delta(mb - ma) if ma is not None and mb is not None else "",
                "a_tokens": ta,
                "b_tokens": tb,
                # a step before the fork was not run again: there is nothing to compare it with
                "token_delta": (tb or 0) - (ta or 0)
                if (ta is not None or tb is not None) and op != "before the fork"
                else None,
                "a_input": _preview(ea, frames.INPUT_KEYS),
                "b_input": _preview(eb, frames.INPUT_KEYS),
                "a_output": _preview(ea, frames.OUTPUT_KEYS),
                "b_output": _preview(eb, frames.OUTPUT_KEYS),
            }
        )
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("a_seq", "b_seq", "a_tokens", "b_tokens", "token_delta"):
        frame[col] = frame[col].astype("Int64")
    return frame


def _preview(entry: Mapping[str, Any] | None, keys: Sequence[str]) -> str:
    return "" if entry is None else frames.short_text(content(frames.pick(entry, keys)))


def alignment_counts(aligned: pd.DataFrame) -> dict[str, int]:
    """How many aligned steps are the same, changed, only in A, only in B."""
    counts = aligned["op"].value_counts()
    return {op: int(counts.get(op, 0)) for op in OPS}


def diff_lines(entry: Mapping[str, Any] | None) -> list[str]:
    """An entry's data as sorted, indented JSON lines, without timestamps, durations and
    ids, for a line diff of two steps."""
    if entry is None:
        return []
    return json.dumps(
        content(entry.get("data")), indent=2, ensure_ascii=False, sort_keys=True, default=str
    ).splitlines()
