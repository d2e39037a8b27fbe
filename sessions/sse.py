"""Server-Sent Events framing: `event: <name>` and one `data:` line of JSON per event."""
from __future__ import annotations

import json
from typing import Any


def format_event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


def parse_events(text: str) -> list[tuple[str, Any]]:
    """The events of an SSE body, in order (clients in Python, and the tests, read streams with it)."""
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append((fields["event"], json.loads(fields.get("data", "null"))))
    return events
