"""Notes kept in a small JSON file, so they outlive the process that wrote them."""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from langchain_core.tools import tool

NOTES_ENV = "AGENT_NOTES_FILE"
MAX_NOTE_CHARS = 2000
_lock = threading.Lock()


def notes_path() -> Path:
    """``AGENT_NOTES_FILE``, else ``notes.json`` in the user's tracedb data folder."""
    env = os.environ.get(NOTES_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("tracedb")) / "agent" / "notes.json"


def load_notes(path: Path | None = None) -> list[dict[str, Any]]:
    """All notes, oldest first; an absent file means no notes yet."""
    path = path or notes_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except json.JSONDecodeError as exc:
        raise ValueError(f"the notes file {path} is not valid JSON: {exc}") from exc
    return list(data.get("notes", []))


def _write(path: Path, notes: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename, so a reader never sees half a file.
    fd, tmp = tempfile.mkstemp(prefix=".notes-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"notes": notes}, fh, ensure_ascii=False, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def add_note(text: str, path: Path | None = None) -> dict[str, Any]:
    """Append a note and return it (with its ``id`` and ``created_at``).

    Raises:
        ValueError: when the text is empty or longer than :data:`MAX_NOTE_CHARS`.
    """
    text = text.strip()
    if not text:
        raise ValueError("a note needs some text")
    if len(text) > MAX_NOTE_CHARS:
        raise ValueError(f"a note is limited to {MAX_NOTE_CHARS} characters")
    path = path or notes_path()
    with _lock:
        notes = load_notes(path)
        note = {
            "id": max((n["id"] for n in notes), default=0) + 1,
            "text": text,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        notes.append(note)
        _write(path, notes)
    return note


def find_notes(query: str, path: Path | None = None) -> list[dict[str, Any]]:
    """Notes containing every word of ``query`` (case-insensitive); all notes for an empty query."""
    words = re.findall(r"\w+", query.lower())
    return [n for n in load_notes(path) if all(w in n["text"].lower() for w in words)]


@tool
def save_note(text: str) -> str:
    """Save a short note for later (a reminder, a fact, a to-do)."""
    note = add_note(text)
    return f"Saved note #{note['id']}: {note['text']}"


@tool
def search_notes(query: str = "") -> str:
    """Find saved notes containing all the given words; an empty query lists every note."""
    found = find_notes(query)
    if not found:
        return f"No notes match {query!r}." if query.strip() else "There are no notes yet."
    head = f"{len(found)} note(s) match {query!r}:" if query.strip() else f"{len(found)} note(s):"
    lines = [f"#{n['id']} ({n['created_at'][:10]}): {n['text']}" for n in found]
    return "\n".join([head, *lines])
