"""A small offline site (markdown pages shipped in ``agent/site``) the agent can browse."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from langchain_core.tools import tool

MAX_RESULTS = 5


@dataclass(frozen=True)
class Page:
    """One page of the bundled site."""

    slug: str
    title: str
    text: str


@lru_cache(maxsize=1)
def site_pages() -> dict[str, Page]:
    """The bundled pages by slug (file name without ``.md``), read once per process."""
    pages: dict[str, Page] = {}
    folder = resources.files("agent") / "site"
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if not item.name.endswith(".md"):
            continue
        text = item.read_text(encoding="utf-8")
        heading = re.search(r"^#\s+(.+)$", text, re.MULTILINE)
        slug = item.name.removesuffix(".md")
        pages[slug] = Page(slug, heading.group(1).strip() if heading else slug, text)
    return pages


def find_page(name: str) -> Page:
    """The page whose slug or title is ``name`` (case-insensitive, ``.md`` optional).

    Raises:
        ValueError: when no page matches; the message suggests close names.
    """
    pages = site_pages()
    key = name.strip().lower().removesuffix(".md").strip("/ ")
    key = re.sub(r"\s+(?:page|doc)$", "", key)
    if key in pages:
        return pages[key]
    for page in pages.values():
        if key == page.title.lower() or (key and key in page.title.lower().split()):
            return page
    close = difflib.get_close_matches(key, list(pages), n=2, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else f"; pages are: {', '.join(pages)}"
    raise ValueError(f"no page named {name.strip()!r}{hint}")


def _snippet(text: str, words: list[str], width: int = 160) -> str:
    flat = re.sub(r"\s+", " ", re.sub(r"^#.*$", "", text, flags=re.MULTILINE)).strip()
    lower = flat.lower()
    pos = min((p for p in (lower.find(w) for w in words) if p >= 0), default=0)
    start = max(0, pos - width // 3)
    piece = flat[start : start + width].strip()
    return ("…" if start else "") + piece + ("…" if start + width < len(flat) else "")


def rank_pages(query: str) -> list[tuple[Page, int]]:
    """Pages that mention any word of ``query``, best first (by occurrences, title hits count triple)."""
    words = [w for w in re.findall(r"\w+", query.lower()) if len(w) > 1]
    scored = []
    for page in site_pages().values():
        body, title = page.text.lower(), page.title.lower()
        score = sum(body.count(w) + 2 * title.count(w) for w in words)
        if score:
            scored.append((page, score))
    return sorted(scored, key=lambda pair: (-pair[1], pair[0].slug))


@tool
def list_pages() -> str:
    """List the pages of the offline tracedb documentation site."""
    pages = site_pages().values()
    return "\n".join([f"{len(pages)} pages:", *(f"- {p.slug}: {p.title}" for p in pages)])


@tool
def read_page(name: str) -> str:
    """Read one page of the offline tracedb documentation site by name, e.g. "recording"."""
    return find_page(name).text.strip()


@tool
def search_pages(query: str) -> str:
    """Search the offline tracedb documentation site and return the best pages with a snippet."""
    if not re.search(r"\w\w", query):
        raise ValueError("the search needs at least one word")
    ranked = rank_pages(query)[:MAX_RESULTS]
    if not ranked:
        return f"No page mentions {query.strip()!r}."
    words = re.findall(r"\w+", query.lower())
    lines = [f"{len(ranked)} page(s) mention {query.strip()!r}:"]
    lines += [f"- {p.slug} ({p.title}): {_snippet(p.text, words)}" for p, _ in ranked]
    return "\n".join(lines)
