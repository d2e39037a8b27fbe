"""The one way a route answers with Server-Sent Events."""
from __future__ import annotations

from collections.abc import Iterator

from flask import Response, stream_with_context


def sse_response(events: Iterator[str]) -> Response:
    """Stream already-framed events, keeping the request context, unbuffered by proxies."""
    return Response(stream_with_context(events), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
