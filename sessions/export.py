"""A session as a Markdown document (the JSON export is the session's API object).

Messages are written inert (answers/policy.py): HTML tags as text and images as their address,
so the file loads nothing remote in whatever viewer opens it."""
from __future__ import annotations

from typing import Any

from answers.policy import inert_markdown
from sessions.repository import SessionView


def to_markdown(session: SessionView) -> str:
    lines = [f"# {session.title}", "", f"Session `{session.id}`, started {session.created_at:%Y-%m-%d %H:%M} UTC.", ""]
    if session.summary:
        lines += ["> Summary of the earlier conversation: " + " ".join(session.summary.split()), ""]
    for message in session.messages:
        speaker = "User" if message.role == "user" else "Assistant"
        text = inert_markdown(message.content.strip())
        lines += [f"## {speaker} · {message.created_at:%Y-%m-%d %H:%M:%S} UTC", "", text or "_(no text)_", ""]
        reason = (message.details or {}).get("finish_reason")
        if reason in ("cancelled", "error"):
            lines += [f"_(answer interrupted: {reason})_", ""]
        if message.sources:
            lines += ["Sources:", ""] + [f"{number}. {_source_line(source)}" for number, source in
                                         enumerate(message.sources, 1)] + [""]
    return "\n".join(lines).rstrip() + "\n"


def _source_line(source: dict[str, Any]) -> str:
    where = [f"page {source['page']}" if source.get("page") else None,
             f"section “{source['section']}”" if source.get("section") else None,
             f"row {source['row']}" if source.get("row") else None,
             f"chunk {source['chunk_index']}"]
    return f"{source['filename']} ({', '.join(part for part in where if part)}, score {source['score']:.2f})"
