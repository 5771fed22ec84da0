"""Token usage, model and cost of an entry, read from what the entry holds.

Where usage is looked for, in order: the entry's ``usage`` or ``usage_metadata``, then the
same keys inside its ``output``. Token counts are ``input_tokens`` (or ``prompt_tokens``),
``output_tokens`` (or ``completion_tokens``), ``total_tokens`` (else input + output);
cached input tokens are ``input_token_details.cache_read`` (or
``prompt_tokens_details.cached_tokens``). The model is the entry's ``model``, else its
output's ``model``, else ``response_metadata.model_name``, else the entry's ``name`` when its
``kind`` is ``llm``.

Cost comes from a price table (US dollars per million input, output and cached input
tokens) shipped with the package, ``tracedb/prices.json``; ``TRACEDB_PRICES`` names a JSON
file of the same shape that replaces it. Nothing is fetched. A model not in the table has
no cost (None), never a guessed one.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import InvalidTraceData

PRICES_ENV = "TRACEDB_PRICES"
_PRICES_FILE = Path(__file__).resolve().parent / "prices.json"
_MAX_TOKENS = 2**31 - 1
_DATED = re.compile(r"-\d{4}-?\d{2}-?\d{2}$|-\d{8}$|-latest$")


@dataclass(frozen=True)
class Usage:
    """What one entry reports: its model, tokens, and cost in US dollars (None: unknown)."""

    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    cached_tokens: int | None
    cost_usd: float | None


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input: float
    output: float
    cached_input: float


def _tokens(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return min(value, _MAX_TOKENS)


def _first(mapping: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in mapping and mapping[key] is not None:
            return mapping[key]
    return None


def is_mapping(value: Any) -> bool:
    """``isinstance(value, Mapping)``, without the abstract class's check for a plain dict
    or None (the common cases, on the per-entry path)."""
    return value is not None and (type(value) is dict or isinstance(value, Mapping))


def _usage_dict(entry: Mapping[str, Any]) -> Mapping[str, Any] | None:
    places: list[Any] = [entry.get("usage"), entry.get("usage_metadata")]
    output = entry.get("output")
    if is_mapping(output):
        places += [output.get("usage"), output.get("usage_metadata")]
    return next((p for p in places if is_mapping(p)), None)


def _model(entry: Mapping[str, Any], usage: Mapping[str, Any] | None) -> str | None:
    output = entry.get("output")
    meta = entry.get("response_metadata")
    for candidate in (
        entry.get("model"),
        output.get("model") if isinstance(output, Mapping) else None,
        meta.get("model_name") if isinstance(meta, Mapping) else None,
        usage.get("model") if usage else None,
        entry.get("name") if entry.get("kind") == "llm" else None,
    ):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()[:200]
    return None


@lru_cache(maxsize=4)
def _load_prices(path: str) -> dict[str, Price]:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidTraceData(f"cannot read the price table {path}: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise InvalidTraceData(f"the price table {path} must be a JSON object of models")
    table: dict[str, Price] = {}
    for model, price in raw.items():
        if model.startswith("_"):
            continue
        if not isinstance(price, Mapping) or not all(
            isinstance(price.get(k, 0), (int, float)) and not isinstance(price.get(k, 0), bool)
            for k in ("input", "output", "cached_input")
        ):
            raise InvalidTraceData(f"the price of {model!r} in {path} must be numbers per million tokens")
        table[model.lower()] = Price(
            float(price.get("input", 0)),
            float(price.get("output", 0)),
            float(price.get("cached_input", price.get("input", 0))),
        )
    return table


def prices() -> dict[str, Price]:
    """The price table in use: ``TRACEDB_PRICES`` or the shipped one."""
    return _load_prices(os.environ.get(PRICES_ENV) or str(_PRICES_FILE))


def price_of(model: str | None) -> Price | None:
    """The price of ``model``: its exact name, without a provider prefix or a dated suffix,
    or the longest table entry it starts with; None when the table does not know it."""
    if not model:
        return None
    table = prices()
    name = model.lower()
    bare = name.split(":", 1)[1] if ":" in name else name
    for key in (name, bare, _DATED.sub("", bare)):
        if key in table:
            return table[key]
    known = [k for k in table if bare.startswith(k + "-")]
    return table[max(known, key=len)] if known else None


def usage_of(entry: Mapping[str, Any]) -> Usage | None:
    """The usage an entry reports, or None when it reports no tokens."""
    usage = _usage_dict(entry)
    if usage is None:
        return None
    input_tokens = _tokens(_first(usage, "input_tokens", "prompt_tokens"))
    output_tokens = _tokens(_first(usage, "output_tokens", "completion_tokens"))
    total = _tokens(usage.get("total_tokens"))
    if total is None and input_tokens is not None and output_tokens is not None:
        total = min(input_tokens + output_tokens, _MAX_TOKENS)
    details = _first(usage, "input_token_details", "prompt_tokens_details")
    cached = _tokens(_first(details, "cache_read", "cached_tokens")) if isinstance(details, Mapping) else None
    if input_tokens is None and output_tokens is None and total is None:
        return None
    model = _model(entry, usage)
    price = price_of(model)
    cost = None
    if price is not None and (input_tokens is not None or output_tokens is not None):
        fresh = (input_tokens or 0) - (cached or 0)
        cost = (
            max(fresh, 0) * price.input
            + (cached or 0) * price.cached_input
            + (output_tokens or 0) * price.output
        ) / 1_000_000
    return Usage(model, input_tokens, output_tokens, total, cached, cost)
