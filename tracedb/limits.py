"""Sizes and limits that more than one place must agree on, defined once.

The search-block sizes are also defined in SQL (``sql/004_one_definition.sql``, functions
``tracedb_search_block_size()`` and ``tracedb_search_entry_bytes()``); a test checks that
both sides agree.
"""

from __future__ import annotations

# Entries per row of automation_trace_search.
SEARCH_BLOCK_SIZE = 32
# An entry larger than this, as stored, is left out of its block's words (the block is then
# marked incomplete and decided by the confirming check).
SEARCH_ENTRY_BYTES = 65536

# Most rows one listing may return.
MAX_LIMIT = 10_000
# Longest user, thread and provider id, trace name and filter text, in UTF-8 bytes: ids and
# names are indexed, and a B-tree index row holds at most 2,704 bytes.
MAX_TEXT_BYTES = 1000

# Entry rows the dashboard reads at most for one trace.
MAX_ENTRY_ROWS = 200_000
# Users and node names offered in filter widgets.
MAX_CHOICES = 500
# Dashboard queries give up after this long rather than hold a page.
DASHBOARD_TIMEOUT_MS = 10_000

# A running trace whose writer has not been heard from for this long reads as abandoned
# (seconds; TRACEDB_ABANDON_AFTER changes it). A recorder beats every HEARTBEAT_S while a
# node runs.
ABANDON_AFTER = 120.0
HEARTBEAT_S = 5.0
