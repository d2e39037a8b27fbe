"""How a request or a CLI command finds the services its app was built with (services.py builds them)."""
from __future__ import annotations

from typing import Any

from flask import current_app

EXTENSION_KEY = "docchat"  # app.extensions[...]: the app's Services
LIMITER_KEY = "docchat_limiter"  # the app's flask-limiter instance (api/limits.py)
ERROR_TABLE_KEY = "docchat_error_table"  # the app's ErrorTable (api/errors.py, filled by error_table.py)


def services() -> Any:
    """The Services of the current app (services.py). Typed loosely on purpose: common/ and api/
    sit below the feature packages and import none of them; each caller knows what it uses."""
    return current_app.extensions[EXTENSION_KEY]
