"""Cross-origin access for browser clients served from other origins (flask-cors), off by default.

Only the origins in CORS_ORIGINS may call the API from a browser. Credentials (the login cookies)
are allowed for named origins only, never with the wildcard: "*" lets any page send Bearer
requests (a token or API key its user pasted), but never rides on a logged-in browser session.
"""
from __future__ import annotations

import re

from flask import Flask
from flask_cors import CORS

from config import ConfigError

ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
ALLOWED_HEADERS = ["Authorization", "Content-Type", "X-CSRF-TOKEN", "X-Request-ID"]
EXPOSED_HEADERS = ["X-Request-ID", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"]


def install_cors(app: Flask, origins: tuple[str, ...]) -> None:
    """Answer CORS preflights and add the CORS headers for `origins`; nothing when there are none."""
    if not origins:
        return
    wildcard = "*" in origins
    if wildcard and len(origins) > 1:
        raise ConfigError("CORS_ORIGINS is either * or a list of origins, not both")
    bad = [origin for origin in origins if origin != "*" and not ORIGIN.match(origin)]
    if bad:
        raise ConfigError(f"CORS_ORIGINS entries must look like https://host[:port], not {bad[0]!r}")
    CORS(app, origins="*" if wildcard else list(origins), supports_credentials=not wildcard, send_wildcard=wildcard,
         allow_headers=ALLOWED_HEADERS, expose_headers=EXPOSED_HEADERS, max_age=600)
