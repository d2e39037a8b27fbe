"""Server-Sent Events: the one framing every streaming route uses, its parser, and the response."""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from flask import Response, stream_with_context

DONE = "data: [DONE]\n\n"  # OpenAI's end-of-stream line (/v1)


def sse_event(data: Any, name: str | None = None) -> str:
    """One event: `event: <name>` (the native API names its events; /v1 does not) and one line
    of compact JSON."""
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


def parse_events(text: str) -> list[tuple[str, Any]]:
    """The named events of an SSE body, in order (clients in Python, and the tests, read streams with it)."""
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append((fields["event"], json.loads(fields.get("data", "null"))))
    return events


def sse_response(events: Iterator[str]) -> Response:
    """Stream already-framed events, keeping the request context, unbuffered by proxies."""
    return Response(stream_with_context(events), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
