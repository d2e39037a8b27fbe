"""What the OpenAI-compatible API raises of its own."""
from __future__ import annotations

from common.errors import NotFound


class ModelNotServed(NotFound):
    """No such model, or not the one this server is running now."""
