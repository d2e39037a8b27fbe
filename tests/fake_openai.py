"""A scriptable OpenAI-compatible server for the remote backend's tests (real HTTP on a real port)."""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

ANSWER = "The harbour ferry leaves at 7:45 every morning."


class FakeOpenAIServer:
    """Each request takes the next scripted behaviour ("stream" once the script is empty):
    "stream", "status:<code>", "stall" (one token, then silence), "garbage" (a malformed chunk)."""

    def __init__(self, answer: str = ANSWER, word_delay_s: float = 0.01) -> None:
        self.answer = answer
        self.word_delay_s = word_delay_s  # a slower model: raise it
        self.hold: threading.Event | None = None  # when set to an unset Event: no token until it is set
        self.script: deque[str] = deque()
        self.requests: list[dict[str, Any]] = []
        self.disconnected = threading.Event()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}/v1"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        body = request.get_json(silent=True) or {}
        self.requests.append({"path": request.path, "headers": dict(request.headers), "body": body,
                              "at": time.monotonic()})
        behaviour = self.script.popleft() if self.script else "stream"
        if behaviour.startswith("status:"):
            status = int(behaviour.split(":", 1)[1])
            error = {"error": {"message": f"upstream says no ({status}); maximum context length is 4096 tokens",
                               "type": "invalid_request_error"}}
            response = Response(json.dumps(error), status=status, mimetype="application/json",
                                headers={"Retry-After": "0"} if status in (429, 503) else {})
        else:
            response = Response(self._events(behaviour, body), mimetype="text/event-stream")
        return response(environ, start_response)

    def _events(self, behaviour: str, body: dict[str, Any]) -> Iterator[str]:
        words = self.answer.split(" ")
        try:
            if behaviour == "garbage":
                yield "data: {not json\n\n"
                return
            if self.hold is not None:
                self.hold.wait(60)
            for number, word in enumerate(words):
                delta = {"content": (" " if number else "") + word}
                yield _chunk({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
                if behaviour == "stall":
                    time.sleep(30)
                time.sleep(self.word_delay_s)
            yield _chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            yield _chunk({"choices": [], "usage": {"prompt_tokens": 321, "completion_tokens": len(words)}})
            yield "data: [DONE]\n\n"
        except GeneratorExit:
            self.disconnected.set()
            raise


def _chunk(fields: dict[str, Any]) -> str:
    return "data: " + json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", **fields}) + "\n\n"
