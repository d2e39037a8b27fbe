"""Rate limits (flask-limiter): routes name their limit, each app gets its own Limiter.

One Limiter per app, not one per module: flask-limiter keeps the first app's defaults and key
prefix on the instance, so a shared one would leak settings between apps built in one process.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, current_app
from flask_limiter import Limiter

from api.validation import document
from common.context import LIMITER_KEY

View = Callable[..., Any]


def rate_limited(route_name: str) -> Callable[[View], View]:
    """Limit this view by the config entry `route_name` (e.g. "login" -> RATELIMIT_LOGIN)."""

    def mark(view: View) -> View:
        vars(view)["rate_limit"] = route_name  # read by install_limiter
        document(view, rate_limit=route_name)
        return view

    return mark


def not_rate_limited(view: View) -> View:
    """Exempt this view from the default limit (health checks, metrics scrapes)."""
    vars(view)["rate_limit_exempt"] = True
    return view


def install_limiter(app: Flask, key_func: Callable[[], str]) -> Limiter:
    """Create the app's Limiter and apply each view's declared limit or exemption.

    A named limit is one budget shared by every route that names it (flask-limiter's shared
    limit, scoped by the name): the "chat" budget is one for /chat/start, /chat/message and the
    /v1 generation routes, and the "login" budget one for /auth/login, /login and /auth/session.
    `key_func` names whom a request counts against (auth's: the user, else the address)."""
    limiter = Limiter(key_func=key_func, app=app)
    app.extensions[LIMITER_KEY] = limiter
    for endpoint, view in list(app.view_functions.items()):
        name = getattr(view, "rate_limit", None)
        if getattr(view, "rate_limit_exempt", False):
            limiter.exempt(view)
        elif name:
            limited = limiter.shared_limit(_configured(name), scope=name)(view)
            app.view_functions[endpoint] = limited  # type: ignore[assignment]  # flask-limiter types its wrapper as maybe async
    return limiter


def _configured(route_name: str) -> Callable[[], str]:
    return lambda: current_app.config["RATE_LIMITS"][route_name]
