"""A TraceFilter as SQL, and the statements that depend on one: listings, counts, deletes,
retention, estimates.

Statements are composed with :mod:`psycopg.sql`; each value goes in through
:class:`Params`, which names its placeholder. No value is ever formatted into SQL text.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from .checks import parse_uuid, require_status, require_text
from .errors import InvalidTraceData
from .jsonsafe import to_jsonable
from .limits import ABANDON_AFTER
from .models import STATUSES, TraceFilter
from .queries import STALE, SUMMARY, SUMMARY_NAMES
from .rows import decode_cursor


class Params(dict[str, Any]):
    """The named parameters of one statement being composed."""

    def add(self, name: str, value: Any) -> sql.Placeholder:
        """Keep ``value`` under a fresh name made from ``name``; return its placeholder."""
        key = f"{name}_{len(self)}"
        self[key] = value
        return sql.Placeholder(key)


# Text search and containment go through automation_trace_search: per block of entries of
# a trace, the words of its strings and "=<hash>" lexemes of its (key, scalar value) pairs,
# each at the position of its entry in the block. A match there only makes a trace a
# candidate; each candidate is confirmed against its entries, so the meaning stays "an
# entry matches". The confirmation is a scalar subquery so that it stays a per-row check of
# the candidates, never a join over every entry. Blocks that could not be indexed whole
# (complete = false) are candidates of every query.
# The candidate query asks for its terms in one entry ("a <0> b": the same position); a
# phrase is asked for as its words in one entry, which the confirmation narrows to the phrase.
#
# Traces whose newest entries are not indexed yet (index_pending: search rows are filled
# behind the writes) are candidates too, but in a branch of their own (see FilterSQL): an
# OR or a UNION inside this IN would stop the planner from probing the search rows of one
# trace at a time, the plan that makes common words fast.
# The candidate blocks of a search: those matching its words, and those not indexed whole.
_BLOCKS = "FROM automation_trace_search s WHERE s.words @@ {words} OR NOT s.complete"
_CANDIDATES = "t.id IN (SELECT s.trace_id " + _BLOCKS + ")"
# The same candidates, found from the search index first: the ids of the matching blocks'
# traces are gathered once, then each trace is read by its id. Chosen per query when the
# planner expects few candidate blocks (see FilterSQL.index_first): the plan above walks the
# newest traces and opens each one's search row until a page is full, which reads most of
# the table when few traces match; PostgreSQL cannot tell "both words in one entry" is rare
# (it takes it for "both words in one block") and keeps that plan.
_CANDIDATES_FIRST = "t.id = ANY(ARRAY(SELECT s.trace_id " + _BLOCKS + "))"
# With the query as tsquery text the planner sees the lexemes' frequencies and nothing is
# parsed per row; used where the parser and the 'simple' dictionary surely agree with it.
_LITERAL_WORDS = "{query}::tsquery"
# "(...) IS TRUE" keeps any index on the entries out of a confirmation: it must read the
# few entries of one trace through the primary key, never every matching entry of the table.
# An entry too big to be indexed is matched by tracedb_entry_matches, which cannot fail.
# The text of a search as PostgreSQL parses it: what every confirmation matches.
_QUERY = "websearch_to_tsquery('simple'::regconfig, {query})"
_TEXT_CONFIRMS = (
    "(SELECT TRUE FROM {entries} AND (CASE"
    " WHEN pg_column_size(e.data) <= tracedb_search_entry_bytes()"
    " THEN jsonb_to_tsvector('simple'::regconfig, e.data, '[\"string\"]'::jsonb)"
    " @@ " + _QUERY + " ELSE tracedb_entry_matches(e.data, " + _QUERY + ") END)"
    " IS TRUE LIMIT 1)"
)
# Plain words (no phrase, no negation, no OR) need no confirming read of the entries where
# the trace's search rows are current (none pending, none of a replaced list) and complete:
# a block's "a <0> b" then says exactly that one of its entries holds both words, as the
# confirmation would find. Only traces without such a block fall back to reading entries.
_EXACT_BLOCK = (
    "(SELECT TRUE FROM automation_traces x JOIN automation_trace_search s ON s.trace_id = x.id"
    " WHERE x.id = {tid} AND NOT x.index_pending AND s.complete"
    " AND s.block * tracedb_search_block_size() < x.indexed_count AND s.words @@ {words}::tsquery"
    " LIMIT 1) IS TRUE"
)
_CONTAINS_CONFIRMS = "(SELECT TRUE FROM {entries} AND (e.data @> {value}) IS TRUE LIMIT 1)"
# A search of several terms in one entry (two words or more, a phrase, OR) goes through
# automation_trace_entry_words instead: a row per indexed entry holding its words with their
# real positions, as the confirmation makes them. The index finds the entries that hold
# the words (a phrase is checked on the stored vectors), and a candidate trace is confirmed
# on its entries' stored vectors, not by reading and tokenising its entries: the result is
# exactly the confirmation's. An entry whose words are not kept (words IS NULL: too big) is
# a candidate of every search and is confirmed from its data.
_ENTRY_ROWS = "FROM automation_trace_entry_words w WHERE w.words @@ {words} OR w.words IS NULL"
_ENTRY_CANDIDATES = "t.id IN (SELECT w.trace_id " + _ENTRY_ROWS + ")"
_ENTRY_CANDIDATES_FIRST = "t.id = ANY(ARRAY(SELECT DISTINCT w.trace_id " + _ENTRY_ROWS + "))"
# A phrase's candidate entries are those holding the keys of its pairs of adjacent words
# ({pairs}: the keys, see sql/024), found by their own index: about as many as hold the
# phrase, where the words' index gives every entry holding all the words, whose positions
# it cannot read. The words are not asked for here as well: the planner would take the two
# conditions for independent and expect a tenth of the rows (at a million traces it then
# gathered 108,000 candidates of a common phrase instead of walking, 1.9 s), and the
# confirmation decides anyway.
_PAIR_ROWS = (
    "FROM automation_trace_entry_words w"
    " WHERE w.pairs @> tracedb_phrase_pairs({pairs}::text[]) OR w.words IS NULL"
)
_PAIR_CANDIDATES = "t.id IN (SELECT w.trace_id " + _PAIR_ROWS + ")"
_PAIR_CANDIDATES_FIRST = "t.id = ANY(ARRAY(SELECT DISTINCT w.trace_id " + _PAIR_ROWS + "))"
# Only the rows of its indexed entries: the rows of a list that an upsert replaced stay
# until the trace is indexed again (with an empty list it is never indexed again).
_ENTRY_CONFIRMS = (
    "(SELECT TRUE FROM automation_traces x JOIN automation_trace_entry_words w"
    " ON w.trace_id = x.id AND w.seq < x.indexed_count WHERE x.id = {tid} AND (CASE"
    " WHEN w.words IS NOT NULL THEN w.words @@ "
    + _QUERY
    + " ELSE (SELECT tracedb_entry_matches(e.data, "
    + _QUERY
    + ") FROM automation_trace_entries e WHERE e.trace_id = w.trace_id AND e.seq = w.seq) END)"
    " IS TRUE LIMIT 1)"
)
# The entries a confirmation reads ({entries} above): all of the trace's, or, in an indexed
# trace (not index_pending: its search rows are current and cover every entry), only those
# its blocks say can match: the ones holding every candidate lexeme, and every entry of a
# block not indexed whole. A phrase of common words read 11 entries per candidate trace,
# re-tokenising each; now one or two. The seq numbers come from the trace's search rows one
# block at a time (tracedb_candidate_seqs is inlined here), each entry read by its key as
# they come (OFFSET 0: the entry's check cannot move before the list), so the first match
# ends the reading of both.
_ALL_ENTRIES = "automation_trace_entries e WHERE e.trace_id = {tid}"
_CANDIDATE_ENTRIES = (
    "tracedb_candidate_seqs({tid}, {lexemes}::text[]) AS k(seq),"
    " LATERAL (SELECT e.data FROM automation_trace_entries e"
    " WHERE e.trace_id = {tid} AND e.seq = k.seq OFFSET 0) e WHERE TRUE"
)
# A word PostgreSQL's parser reads as one token spelled as typed (lower-cased): letters then
# letters or digits, or digits alone ("12e3x" is two tokens, "12e3" and "x").
_ONE_TOKEN = re.compile(r"^(?:[A-Za-z][A-Za-z0-9]*|[0-9]+)$")
_ASCII_SPACE = re.compile(r"[ \t\n\r\v\f]+")
_TERM = re.compile(r'-?"[^"]*"?|\S+')


def _same_entry_words(text: str) -> list[str] | None:
    """The words of ``text``, lower-cased, when it is only words the parser reads as one
    token each, apart by ASCII white space (Python's split() also splits on characters the
    parser reads as punctuation: a no-break space makes "foo bar" a phrase); None otherwise
    (a quote, a negation, OR, any other character)."""
    words = [w for w in _ASCII_SPACE.split(text) if w]
    if not words or not all(_ONE_TOKEN.match(w) for w in words) or any(w.lower() == "or" for w in words):
        return None
    return [w.lower() for w in words]


def same_entry_tsquery(lexemes: list[str]) -> str:
    """tsquery text asking for all ``lexemes`` in one entry (``'a' <0> 'b'``)."""
    return " <0> ".join(f"'{w}'" for w in lexemes)


_PHRASE = re.compile(r'"([^"]*)"')


def phrase_pairs(candidates: str) -> list[str]:
    """The pairs of adjacent words ("first second", lower-cased) of the quoted phrases of
    ``candidates``, all to be found in one entry. Only a text of plain words and quotes has
    them: any other character may be an operator to PostgreSQL (a lone "-" negates the
    phrase after it, "or" next to a quote or "|" is OR), and then not every phrase is
    needed."""
    if words_lexemes(candidates) is None:
        return []
    pairs: set[str] = set()
    for phrase in _PHRASE.findall(candidates):
        words = _same_entry_words(phrase)
        if words is not None:
            pairs.update(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))
    return sorted(pairs)


def words_lexemes(candidates: str) -> list[str] | None:
    """The words of ``candidates`` (words and quoted phrases of them), all to be found in
    one entry; None when they are not all plain words (PostgreSQL parses the text then)."""
    return _same_entry_words(candidates.replace('"', " "))


def exact_words_tsquery(text: str) -> str | None:
    """``text`` as tsquery text when it is only plain words (no quotes, negations or OR):
    then a current, complete search block that matches it holds an entry that matches
    ``text``. None otherwise."""
    words = _same_entry_words(text)
    return None if words is None else same_entry_tsquery(words)


def _scalar_text(value: Any) -> str | None:
    """A JSON scalar as ``tracedb_json_keys`` spells it; None for objects and arrays."""
    if value is None:
        return "z"
    if isinstance(value, bool):
        return "btrue" if value else "bfalse"
    if isinstance(value, str):
        return "s" + value
    if isinstance(value, (int, float)):
        # PostgreSQL reads the JSON text json.dumps writes (repr for floats) as numeric, and
        # trim_scale drops trailing zeros: 1.0 and 1 are both "n1".
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        return "n0" if number == 0 else "n" + format(number.normalize(), "f")
    return None


def contains_keys(value: Any, key: str | None = None) -> set[str]:
    """The "=<hash>" lexemes that every entry containing ``value`` has in its block: one per
    (nearest object key, scalar value), as ``tracedb_json_keys`` makes them."""
    keys: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            keys |= contains_keys(v, str(k))
    elif isinstance(value, list):
        for v in value:
            keys |= contains_keys(v, key)
    elif key is not None:
        text = _scalar_text(value)
        if text is not None:
            keys.add("=" + hashlib.md5(f"{key}={text}".encode()).hexdigest()[:16])
    return keys


def contains_lexemes(value: Any) -> list[str]:
    """The lexemes every entry containing ``value`` has in its block, sorted; none when it
    has no key to look for."""
    return sorted(contains_keys(value)) if isinstance(value, dict) else []


def candidate_terms(text: str) -> str | None:
    """The websearch query that every matching trace's words must satisfy.

    Negated terms are dropped (a block can hold a word that the matching entry lacks).
    None when no such query exists: only negations, or a negation next to OR.
    """
    terms = _TERM.findall(text)
    negated = [t for t in terms if t.startswith("-") and len(t) > 1]
    if negated and any(t.lower() == "or" for t in terms):
        return None
    if any(t.count('"') % 2 for t in negated):
        # dropping it would pair the quotes of what is left differently ('-p"q r" s t"')
        return None
    kept = [t for t in terms if t not in negated]
    return " ".join(kept) if kept else None


def _like_prefix(text: str) -> str:
    return text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# A confirmation: its SQL, given the SQL of the trace's id and the branch it runs in.
Confirm = Callable[[sql.Composable, str], sql.Composable]
_TRACE_ID = sql.SQL("t.id")


@dataclass(frozen=True)
class SearchRows:
    """One search condition's candidates: the tsquery SQL its candidate rows must match, in
    the rows of entries (automation_trace_entry_words) when ``per_entry``, else of blocks
    (automation_trace_search); of entries, those holding ``pairs`` (the placeholder of the
    pairs of adjacent words of a phrase) when given."""

    words: sql.Composable
    per_entry: bool = False
    pairs: sql.Composable | None = None

    @property
    def rows(self) -> str:
        """Which rows the candidates are found by: blocks, entries or pairs."""
        if not self.per_entry:
            return "blocks"
        return "entries" if self.pairs is None else "pairs"

    @property
    def shape_args(self) -> dict[str, sql.Composable]:
        """The arguments of the SQL shape of these rows."""
        return {"words": self.words} | ({} if self.pairs is None else {"pairs": self.pairs})


@dataclass
class FilterSQL:
    """A TraceFilter as SQL: conditions indexes can answer, search candidates (through the
    search rows), and confirmations to check per candidate trace (each a function of the SQL
    expression of that trace's id), sharing one set of named parameters.

    With search candidates a query runs in two branches that never overlap: the indexed
    traces that the search rows name, and the traces with entries not indexed yet
    (``index_pending``, few: the ones being written), which are confirmed directly. Each
    branch gets its own plan.
    """

    params: Params = field(default_factory=Params)
    conditions: list[sql.Composable] = field(default_factory=list)
    # the search conditions, each with the rows its candidates are found by
    searches: list[SearchRows] = field(default_factory=list)
    confirms: list[Confirm] = field(default_factory=list)
    scope: sql.Composable | None = None
    # True once a condition that cannot match every trace is added (see narrows)
    narrowing: bool = False
    # several terms in one entry (words, a phrase, key/value pairs): where walking the
    # newest traces can take long, and starting from the search index may be the better plan
    several_terms: bool = False
    index_first: bool = False

    @property
    def search(self) -> list[sql.Composable]:
        """The search conditions: candidates through the search rows, found from the search
        index first when ``index_first``."""
        shapes = {
            ("blocks", False): _CANDIDATES,
            ("blocks", True): _CANDIDATES_FIRST,
            ("entries", False): _ENTRY_CANDIDATES,
            ("entries", True): _ENTRY_CANDIDATES_FIRST,
            ("pairs", False): _PAIR_CANDIDATES,
            ("pairs", True): _PAIR_CANDIDATES_FIRST,
        }
        return [sql.SQL(shapes[s.rows, self.index_first]).format(**s.shape_args) for s in self.searches]

    @property
    def branches(self) -> list[str]:
        """The branches a query over this filter runs: "all", or "indexed" and "pending"."""
        return ["indexed", "pending"] if self.search else ["all"]

    def where(self, branch: str = "all", *, with_confirms: bool = True) -> sql.Composable:
        """The WHERE condition of a branch (without the keyword); TRUE when there is none."""
        parts = list(self.conditions) + ([self.scope] if self.scope is not None else [])
        if branch in ("all", "indexed"):
            parts += self.search
        if branch == "indexed":
            parts.append(sql.SQL("NOT t.index_pending"))
        elif branch == "pending":
            parts.append(sql.SQL("t.index_pending"))
        if with_confirms:
            parts += [confirm(_TRACE_ID, branch) for confirm in self.confirms]
        return sql.SQL(" AND ").join(parts) if parts else sql.SQL("TRUE")

    @property
    def empty(self) -> bool:
        return not self.conditions and not self.search and not self.confirms

    @property
    def narrows(self) -> bool:
        """False when the filter can match every trace: no condition at all, or only ones
        such as an empty ``contains`` or a text of negations. Deleting with such a filter
        needs the explicit "all"."""
        return self.narrowing


def compile_filter(
    flt: TraceFilter | None, scope: str | None = None, abandon_after: float = ABANDON_AFTER
) -> FilterSQL:
    """The SQL of ``flt``, for a store that sees only ``scope``'s traces (None: everyone's),
    where a running trace not heard from for ``abandon_after`` seconds is abandoned.

    Raises:
        InvalidTraceData: a field has a value of the wrong type.
    """
    if flt is not None and not isinstance(flt, TraceFilter):
        raise InvalidTraceData(f"filter must be a TraceFilter, got {type(flt).__name__}")
    flt = flt or TraceFilter()
    out = FilterSQL()
    p, cond = out.params, out.conditions
    p["abandon_after"] = float(abandon_after)
    if scope is not None:
        # Not a condition of the caller's choosing: is_empty_filter looks at conditions only.
        out.scope = sql.SQL("t.user_id = {}").format(p.add("scope", scope))
    user_id = _optional_text("user_id", flt.user_id)
    thread_id = _optional_text("thread_id", flt.thread_id)
    provider_id = _optional_text("provider_id", flt.provider_id)
    name = _optional_text("name", flt.name)
    node = _optional_text("node", flt.node)
    text = _optional_text("text", flt.text)
    if user_id:
        cond.append(sql.SQL("t.user_id = {}").format(p.add("user_id", user_id)))
    if thread_id:
        cond.append(sql.SQL("t.thread_id = {}").format(p.add("thread_id", thread_id)))
    if provider_id:
        cond.append(sql.SQL("t.provider_id = {}").format(p.add("provider_id", provider_id)))
    if name:
        cond.append(sql.SQL("lower(t.name) LIKE {}").format(p.add("name", _like_prefix(name))))
    if flt.status:
        cond.append(_status_condition(flt.status, p))
    for label, value, op in (("since", flt.since, ">="), ("until", flt.until, "<")):
        if value is not None:
            if not isinstance(value, datetime):
                raise InvalidTraceData(f"{label} must be a datetime, got {type(value).__name__}")
            cond.append(sql.SQL("t.updated_at {} {}").format(sql.SQL(op), p.add(label, value)))
    if node:
        cond.append(sql.SQL("t.nodes @> ARRAY[{}]::text[]").format(p.add("node", node)))
    out.narrowing = bool(cond)  # each condition so far excludes some traces
    if text:
        _add_text(out, text)
    if flt.contains is not None:
        if not isinstance(flt.contains, (dict, list)):
            raise InvalidTraceData("contains must be a JSON object or array")
        contained = to_jsonable(flt.contains)
        if isinstance(contained, list):
            cond.append(sql.SQL("FALSE"))  # entries are JSON objects: none contains an array
            out.narrowing = True
        else:
            keys = contains_lexemes(contained)
            if keys:
                words = sql.SQL(_LITERAL_WORDS).format(query=p.add("keys", same_entry_tsquery(keys)))
                _add_search(out, words, several=len(keys) > 1)
            # else ({} or only empty values) every trace with an entry matches
            value = p.add("contains", Jsonb(contained))
            narrow_keys = _narrowing(p, keys or None)
            out.confirms.append(
                lambda tid, branch, value=value: sql.SQL(_CONTAINS_CONFIRMS).format(
                    value=value, entries=narrow_keys(tid, branch)
                )
            )
    if flt.trace_ids is not None:
        if isinstance(flt.trace_ids, (str, bytes)) or not isinstance(
            flt.trace_ids, (list, tuple, set, frozenset)
        ):
            raise InvalidTraceData("trace_ids must be a list of trace ids")
        ids = [i for i in (parse_uuid(v) for v in flt.trace_ids) if i]
        cond.append(sql.SQL("t.id = ANY({}::uuid[])").format(p.add("trace_ids", ids)))
        out.narrowing = True
    return out


def _add_text(out: FilterSQL, text: str) -> None:
    """The search condition and confirmation of a text search."""
    p = out.params
    candidates = candidate_terms(text)  # None: negations only, which can match every trace
    lexemes = None if candidates is None else words_lexemes(candidates)
    query = p.add("text", text)
    if candidates is not None and (lexemes is None or len(lexemes) > 1):
        # several terms in one entry (words, a phrase, OR): through the entries' words
        words = sql.SQL(_QUERY).format(query=p.add("words", candidates))
        pairs = phrase_pairs(candidates)
        _add_search(out, words, several=True, per_entry=True, pairs=p.add("pairs", pairs) if pairs else None)

        def confirm(tid: sql.Composable, branch: str) -> sql.Composable:
            if branch == "indexed":
                return sql.SQL(_ENTRY_CONFIRMS).format(tid=tid, query=query)
            return sql.SQL(_TEXT_CONFIRMS).format(query=query, entries=sql.SQL(_ALL_ENTRIES).format(tid=tid))

        out.confirms.append(confirm)
        return
    if lexemes:  # one word
        words = sql.SQL(_LITERAL_WORDS).format(query=p.add("words", same_entry_tsquery(lexemes)))
        _add_search(out, words, several=False)
    narrow = _narrowing(p, lexemes)
    exact = exact_words_tsquery(text)
    if exact is None:
        out.confirms.append(
            lambda tid, branch: sql.SQL(_TEXT_CONFIRMS).format(query=query, entries=narrow(tid, branch))
        )
    else:
        exact_words = p.add("exact_words", exact)
        out.confirms.append(
            lambda tid, branch: sql.SQL("({} OR {})").format(
                sql.SQL(_EXACT_BLOCK).format(tid=tid, words=exact_words),
                sql.SQL(_TEXT_CONFIRMS).format(query=query, entries=narrow(tid, branch)),
            )
        )


def _narrowing(p: Params, lexemes: list[str] | None) -> Callable[[sql.Composable, str], sql.Composable]:
    """The entries a confirmation reads, given the trace id's SQL and the branch: fewer in
    the indexed branch when the candidates are found by ``lexemes``, all in one entry."""
    param = p.add("lexemes", sorted(set(lexemes))) if lexemes else None

    def entries(tid: sql.Composable, branch: str) -> sql.Composable:
        if param is not None and branch == "indexed":
            return sql.SQL(_CANDIDATE_ENTRIES).format(tid=tid, lexemes=param)
        return sql.SQL(_ALL_ENTRIES).format(tid=tid)

    return entries


def _add_search(
    out: FilterSQL,
    words: sql.Composable,
    several: bool,
    per_entry: bool = False,
    pairs: sql.Composable | None = None,
) -> None:
    """A search condition of ``words`` (tsquery SQL): candidates through the search rows,
    of entries when ``per_entry`` (which hold ``pairs``, when given), else of blocks."""
    out.searches.append(SearchRows(words, per_entry, pairs))
    out.several_terms = out.several_terms or several
    out.narrowing = True


def _optional_text(name: str, value: Any) -> str | None:
    """A text filter field: None or blank means "any"; anything but a string is an error."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return require_text(name, value)


def _status_condition(status: Any, p: Params) -> sql.Composable:
    """Traces whose status, as read, is one of ``status``: "running" is a running trace heard
    from lately, "abandoned" one that has not been (see STALE)."""
    statuses = [status] if isinstance(status, str) else status
    if not isinstance(statuses, (list, tuple, set, frozenset)) or not statuses:
        raise InvalidTraceData(f"status must be one of {', '.join(STATUSES)} or a list of them")
    chosen = {require_status(s, readable=True) for s in statuses}
    parts: list[sql.Composable] = []
    stored = sorted(chosen - {"running", "abandoned"})
    if stored:
        parts.append(sql.SQL("t.status = ANY({})").format(p.add("status", stored)))
    if {"running", "abandoned"} <= chosen:
        parts.append(sql.SQL("t.status = 'running'"))
    elif "running" in chosen:
        parts.append(sql.SQL("(t.status = 'running' AND NOT {})").format(STALE))
    elif "abandoned" in chosen:
        parts.append(sql.SQL("(t.status = 'running' AND {})").format(STALE))
    return sql.SQL("({})").format(sql.SQL(" OR ").join(parts))


def is_empty_filter(flt: TraceFilter | None) -> bool:
    """True when ``flt`` can match every trace: it has no condition, or only ones that need
    not exclude any trace (an empty ``contains``, a text of negations only)."""
    return not compile_filter(flt).narrows


_ORDER = sql.SQL("ORDER BY t.updated_at DESC, t.id DESC")
# One branch of a page with confirmations: its candidates in order, confirmed up to the page.
_BRANCH = (
    "SELECT {names}, c.uid FROM (SELECT {columns}, t.id AS uid FROM automation_traces t"
    " WHERE {where} {order} OFFSET 0) c WHERE {checks} LIMIT {limit} OFFSET {offset}"
)
# The same for a page that starts from the search index: the candidates are ordered by their
# ids alone (automation_traces_order_idx holds updated_at and index_pending), and only the
# rows of the page are read whole. A condition on another column (a user's scope, a status)
# reads each candidate's row again, as before. OFFSET 0 keeps the row's look-up a subquery
# run for each candidate in order; pulled up into a join, it could be planned as the outer
# side and lose the order the LIMIT relies on.
_BRANCH_ORDERED_BY_INDEX = (
    "SELECT {names}, c.uid FROM (SELECT t.id AS uid FROM automation_traces t"
    " WHERE {where} {order} OFFSET 0) c,"
    " LATERAL (SELECT {columns} FROM automation_traces t WHERE t.id = c.uid OFFSET 0) s"
    " WHERE {checks} LIMIT {limit} OFFSET {offset}"
)


def _union(f: FilterSQL, branch_query: Callable[[str], sql.Composable]) -> sql.Composable:
    """The branches of a query over ``f`` (see FilterSQL), joined by UNION ALL."""
    parts = [sql.SQL("({})").format(branch_query(b)) for b in f.branches]
    return sql.SQL(" UNION ALL ").join(parts)


def list_query(
    flt: TraceFilter | None,
    limit: int,
    cursor: str | None,
    scope: str | None = None,
    abandon_after: float = ABANDON_AFTER,
    offset: int = 0,
    index_first: bool = False,
) -> tuple[sql.Composed, Params]:
    """One page (``limit + 1`` rows) of matching traces, newest first, after ``cursor``,
    skipping ``offset`` of them. ``index_first``: find the search candidates from the search
    index first (see :func:`candidate_blocks_query`); the same rows either way.

    Confirmations are applied to the ordered candidates, outside an ``OFFSET 0`` fence, so
    that only as many candidates are confirmed as the page needs rather than every candidate
    before the sort. The outer query has no ORDER BY of its own: with one, PostgreSQL would
    plan the inner query for all its rows instead of the few the LIMIT needs; a filter over
    a subquery scan keeps the subquery's order. With search candidates, the inner query
    merges its two branches (indexed, pending) in order.
    """
    f = compile_filter(flt, scope, abandon_after)
    f.index_first = index_first
    if cursor:
        when, tid = decode_cursor(cursor)
        f.conditions.append(
            sql.SQL("(t.updated_at, t.id) < ({}, {}::uuid)").format(
                f.params.add("after_time", when), f.params.add("after_id", tid)
            )
        )
    limit_ = f.params.add("limit", limit + 1)
    offset_ = f.params.add("offset", offset)
    if not f.confirms:
        query = sql.SQL(
            "SELECT {columns} FROM automation_traces t WHERE {where} {order} LIMIT {limit} OFFSET {offset}"
        )
        return query.format(
            columns=SUMMARY, where=f.where(with_confirms=False), order=_ORDER, limit=limit_, offset=offset_
        ), f.params

    # each branch of a union must hold the skipped rows too
    branch_limit = f.params.add("branch_limit", limit + 1 + offset)
    zero = f.params.add("no_offset", 0)

    def branch(b: str, rows: sql.Composable = branch_limit, skip: sql.Composable = zero) -> sql.Composable:
        # each branch confirms its own ordered candidates up to the page size, so that each
        # is planned for the few rows it needs (a LIMIT does not reach into UNION branches)
        shape = _BRANCH_ORDERED_BY_INDEX if index_first else _BRANCH
        return sql.SQL(shape).format(
            names=SUMMARY_NAMES,
            columns=SUMMARY,
            where=f.where(b, with_confirms=False),
            order=_ORDER,
            checks=sql.SQL(" AND ").join(confirm(sql.SQL("c.uid"), b) for confirm in f.confirms),
            limit=rows,
            offset=skip,
        )

    if f.branches == ["all"]:
        only = branch("all", limit_, offset_)
        return sql.SQL("SELECT {names} FROM ({b}) p").format(names=SUMMARY_NAMES, b=only), f.params
    query = sql.SQL(
        "SELECT {names} FROM ({union}) p ORDER BY p.updated_at DESC, p.uid DESC LIMIT {limit} OFFSET {offset}"
    )
    return query.format(names=SUMMARY_NAMES, union=_union(f, branch), limit=limit_, offset=offset_), f.params


def _delete_batch(f: FilterSQL, batch: int) -> sql.Composed:
    # ARRAY(...) is computed once, then each id is found through the primary key; with
    # IN (...) the planner may hash the batch and scan the whole table for every batch.
    batch_ = f.params.add("batch", batch)

    def branch(b: str) -> sql.Composable:
        return sql.SQL("SELECT t.id FROM automation_traces t WHERE {where} LIMIT {batch}").format(
            where=f.where(b), batch=batch_
        )

    return sql.SQL("DELETE FROM automation_traces WHERE id = ANY(ARRAY({ids}))").format(ids=_union(f, branch))


def _count(f: FilterSQL) -> sql.Composed:
    def branch(b: str) -> sql.Composable:
        return sql.SQL("SELECT 1 FROM automation_traces t WHERE {}").format(f.where(b))

    return sql.SQL("SELECT count(*) AS n FROM ({union}) x").format(union=_union(f, branch))


def prune_query(
    flt: TraceFilter | None,
    older_than: timedelta,
    keep_last: int,
    batch: int,
    dry_run: bool,
    scope: str | None = None,
    abandon_after: float = ABANDON_AFTER,
) -> tuple[sql.Composed, Params]:
    """Retention: delete (or with ``dry_run`` count) up to ``batch`` traces not updated for
    ``older_than`` that match ``flt``, keeping each user's ``keep_last`` most recent."""
    f = compile_filter(flt, scope, abandon_after)
    f.conditions.append(sql.SQL("t.updated_at < now() - {}").format(f.params.add("older_than", older_than)))
    if keep_last:
        keep = f.params.add("keep", keep_last)
        f.conditions.append(
            sql.SQL(
                "EXISTS (SELECT 1 FROM (SELECT u.updated_at, u.id FROM automation_traces u"
                " WHERE u.user_id = t.user_id ORDER BY u.updated_at DESC, u.id DESC OFFSET {keep} - 1 LIMIT 1) k"
                " WHERE (t.updated_at, t.id) < (k.updated_at, k.id))"
            ).format(keep=keep)
        )
    return (_count(f) if dry_run else _delete_batch(f, batch)), f.params


def count_query(
    flt: TraceFilter | None, scope: str | None = None, abandon_after: float = ABANDON_AFTER
) -> tuple[sql.Composed, Params]:
    f = compile_filter(flt, scope, abandon_after)
    return _count(f), f.params


def delete_batch_query(
    flt: TraceFilter | None, batch: int, scope: str | None = None, abandon_after: float = ABANDON_AFTER
) -> tuple[sql.Composed, Params]:
    """Delete up to ``batch`` matching traces of each branch (entries go by cascade)."""
    f = compile_filter(flt, scope, abandon_after)
    return _delete_batch(f, batch), f.params


def count_estimate_query(
    flt: TraceFilter | None, scope: str | None = None, abandon_after: float = ABANDON_AFTER
) -> tuple[sql.Composed, Params]:
    """EXPLAIN of the matching rows: the planner's estimate of a count, in about a millisecond.

    For a dashboard's "about N" when the exact count would take too long; read the figure
    with :func:`estimate_from_plan`.
    """
    f = compile_filter(flt, scope, abandon_after)
    # Only the index conditions: the planner cannot judge how many candidates a confirmation
    # keeps, while the candidates' count is what its statistics describe.
    query = sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM automation_traces t WHERE {}")
    return query.format(f.where(with_confirms=False)), f.params


# A page starts from the search index when the planner expects at most
# sqrt(INDEX_FIRST_FACTOR * all blocks) candidate blocks, else it walks the newest traces.
# Gathering the candidates costs about what they number (C); walking costs about how many
# traces it opens before a page is full, the page size times all blocks (N) over the
# traces that match, which the planner puts at about C / 8: the two cost the same where C
# grows as the square root of N. Measured (python -m bench.query, two words in one entry):
# at 200,000 traces the two ways cost the same at about 11,000 blocks expected, at 900,000
# at about 26,000 (walking 250-550 ms, from the index 180-520 ms); two common words (every
# block expected) take over a second from the index against 4-6 ms walking.
INDEX_FIRST_FACTOR = 600


# The same for a search through the entries' words, against all entry rows (about 24,500
# expected at a million traces). Measured there (python -m bench.query, then each page
# warm, both plans): two words with 1,500-4,200 entries expected cost 23-75 ms from the
# index and 25-93 ms walking; a phrase with 22,000 expected 287 ms from the index against
# 656 ms walking, one with 128,000-154,000 expected 310-360 ms walking against 2.3-3.3 s.
ENTRY_INDEX_FIRST_FACTOR = 60
_CANDIDATE_BLOCKS_QUERY = "EXPLAIN (FORMAT JSON) SELECT 1 " + _BLOCKS
_CANDIDATE_ENTRIES_QUERY = "EXPLAIN (FORMAT JSON) SELECT 1 " + _ENTRY_ROWS
_CANDIDATE_PAIRS_QUERY = "EXPLAIN (FORMAT JSON) SELECT 1 " + _PAIR_ROWS
# The planner's estimate of all rows, next to that of the candidates. Each is read from its
# plan's top node, which counts all rows also when the plan runs in parallel (a Gather's
# children count one process's share).
ALL_BLOCKS_QUERY = "EXPLAIN (FORMAT JSON) SELECT 1 FROM automation_trace_search"
ALL_ENTRY_ROWS_QUERY = "EXPLAIN (FORMAT JSON) SELECT 1 FROM automation_trace_entry_words"


@dataclass(frozen=True)
class CandidateEstimate:
    """What decides whether a page starts from the search index: EXPLAINs of the candidate
    rows of a search for several terms in one entry (``query`` with ``params``) and of all
    rows of the table they come from (``every``), compared with ``factor``."""

    query: sql.Composed
    params: Params
    every: str
    factor: int

    def starts_from_index(self, candidates: Any, every: Any) -> bool:
        """Whether a page starts from the search index, given the results of the two
        EXPLAINs (``index_first`` of :func:`list_query`)."""
        return estimate_from_plan(candidates) <= math.sqrt(self.factor * estimate_from_plan(every))


def candidate_estimate(
    flt: TraceFilter | None, scope: str | None = None, abandon_after: float = ABANDON_AFTER
) -> CandidateEstimate | None:
    """The EXPLAINs deciding whether a page of ``flt`` starts from the search index; None
    when it has no search for several terms in one entry, or more than one search (a page
    then walks the newest traces, as for a single word)."""
    f = compile_filter(flt, scope, abandon_after)
    if len(f.searches) != 1 or not f.several_terms:
        return None
    search = f.searches[0]
    rows = search.rows
    if rows == "blocks":
        shape, every, factor = _CANDIDATE_BLOCKS_QUERY, ALL_BLOCKS_QUERY, INDEX_FIRST_FACTOR
    else:
        shape = _CANDIDATE_ENTRIES_QUERY if rows == "entries" else _CANDIDATE_PAIRS_QUERY
        every, factor = ALL_ENTRY_ROWS_QUERY, ENTRY_INDEX_FIRST_FACTOR
    return CandidateEstimate(sql.SQL(shape).format(**search.shape_args), f.params, every, factor)


def estimate_from_plan(row: dict[str, Any] | tuple[Any, ...] | None) -> int:
    """The estimated row count from the result of :func:`count_estimate_query`."""
    if row is None:
        return 0
    plan = row["QUERY PLAN"] if isinstance(row, dict) else row[0]
    return int(plan[0]["Plan"]["Plan Rows"])
