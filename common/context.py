"""How a request or a CLI command finds the services its app was built with (services.py builds them)."""
from __future__ import annotations

from typing import Any

from flask import current_app, has_request_context, request

EXTENSION_KEY = "docchat"  # app.extensions[...]: the app's Services
LIMITER_KEY = "docchat_limiter"  # the app's flask-limiter instance (api/limits.py)
ERROR_TABLE_KEY = "docchat_error_table"  # the app's ErrorTable (api/errors.py, filled by error_table.py)


def services() -> Any:
    """The Services of the current app (services.py). Typed loosely on purpose: common/ and api/
    sit below the feature packages and import none of them; each caller knows what it uses."""
    return current_app.extensions[EXTENSION_KEY]


def audit(event: str, actor: str | None = None, target: str | None = None,
          details: dict[str, Any] | None = None) -> None:
    """Record a security event in the app's audit log, with the client's address when a request
    is being served (after ProxyFix: the real client); a command line's events have none."""
    address = request.remote_addr if has_request_context() else None
    services().audit.record(event, actor=actor, target=target, address=address, details=details)
