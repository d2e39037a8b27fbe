"""What chat sessions raise."""
from __future__ import annotations

from common.errors import NotFound


class SessionNotFound(NotFound):
    """No such chat session for this user."""
