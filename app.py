"""create_app(): configuration, components and services built once, blueprints, and the one error table."""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
import uuid
from datetime import timedelta
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request
from redis.exceptions import RedisError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from api.cors import install_cors
from api.errors import HTTP_CODES, error_response, status_and_code
from api.limits import install_limiter
from auth.decorators import rate_limit_key
from auth.tokens import init_jwt
from auth.users import BOOTSTRAP_ADMIN_NAME
from common.context import ERROR_TABLE_KEY, EXTENSION_KEY
from common.errors import DomainError, PayloadTooLarge
from config import Config
from error_table import ERROR_TABLE
from ingest.spacy_model import load_parser
from services import Services, build_services

log = logging.getLogger("docchat")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def create_app(config: Config | None = None, services: Services | None = None) -> Flask:
    """Build the app. Without a config, everything comes from the environment (see config.py);
    without `services`, build_services() makes them from the config (a test may pass its own)."""
    config = config or Config.from_env()
    _keep_private(config.data_dir)
    config = config.with_secret()
    config.check_production()
    _configure_logging(config)
    app = Flask(__name__)
    app.config.update(_flask_settings(config))
    app.json.sort_keys = False  # type: ignore[attr-defined]  # Flask's default provider has it; the base type not
    if config.trusted_proxy_hops > 0:
        hops = config.trusted_proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]  # as Flask documents
    app.extensions[EXTENSION_KEY] = services or build_services(config)
    app.extensions[ERROR_TABLE_KEY] = ERROR_TABLE
    _register_hooks(app)  # before the limiter's hook, so even a 429 carries a request id
    init_jwt(app)
    _register_blueprints(app)
    install_cors(app, config.cors_origins)
    install_limiter(app, rate_limit_key)
    _register_error_handlers(app)
    _register_cli(app)
    return app


def start_background_work(app: Flask) -> None:
    """Start ingestion workers (picking up jobs an earlier run left) and, unless
    LOAD_MODEL_AT_START=false, the model's loading and spaCy's (follow-up questions need it).
    Idempotent."""
    services: Services = app.extensions[EXTENSION_KEY]
    services.ingestion.start()
    services.maintenance.start()
    if services.config.load_model_at_start:
        services.llm.manager.start()
        threading.Thread(target=load_parser, name="spacy-load", daemon=True).start()


def bootstrap_first_admin(app: Flask) -> str | None:
    """On a fresh install, create the first admin and print its password once (to stderr)."""
    services: Services = app.extensions[EXTENSION_KEY]
    if not services.config.bootstrap_admin:
        return None
    password = services.users.bootstrap_admin()
    if password:
        banner = "=" * 64
        print(
            f"\n{banner}\nNo user existed, so an admin account was created:\n"
            f"  username: {BOOTSTRAP_ADMIN_NAME}\n  password: {password}\n"
            f"This password is shown only now. Log in and keep it safe.\n{banner}\n",
            file=sys.stderr,
            flush=True,
        )
    return password


def _flask_settings(config: Config) -> dict[str, Any]:
    return {
        "SECRET_KEY": config.flask_secret_key,
        "TESTING": config.app_env == "testing",
        "MAX_CONTENT_LENGTH": config.max_upload_mb * 1024 * 1024,
        "JWT_SECRET_KEY": config.jwt_secret_key,
        "JWT_ALGORITHM": "HS256",
        "JWT_DECODE_ALGORITHMS": ["HS256"],
        "JWT_TOKEN_LOCATION": ["headers", "cookies"],  # Bearer for the API, HttpOnly cookies for the browser
        "JWT_COOKIE_CSRF_PROTECT": True,
        "JWT_CSRF_IN_COOKIES": True,
        "JWT_COOKIE_SECURE": config.cookie_secure,
        "JWT_COOKIE_SAMESITE": "Strict",
        "JWT_SESSION_COOKIE": False,
        "JWT_ACCESS_COOKIE_NAME": "docchat_access",
        "JWT_REFRESH_COOKIE_NAME": "docchat_refresh",
        "JWT_REFRESH_COOKIE_PATH": "/auth/session/refresh",
        "JWT_ACCESS_CSRF_COOKIE_NAME": "docchat_csrf",
        "JWT_REFRESH_CSRF_COOKIE_NAME": "docchat_refresh_csrf",
        "JWT_REFRESH_CSRF_COOKIE_PATH": "/",
        "JWT_ACCESS_TOKEN_EXPIRES": timedelta(minutes=config.access_token_minutes),
        "JWT_REFRESH_TOKEN_EXPIRES": timedelta(days=config.refresh_token_days),
        "RATELIMIT_STORAGE_URI": config.ratelimit_storage_uri,
        "RATELIMIT_DEFAULT": config.ratelimit_default,
        "RATELIMIT_HEADERS_ENABLED": True,
        "RATELIMIT_KEY_PREFIX": config.ratelimit_key_prefix,
        "RATE_LIMITS": {
            "login": config.ratelimit_login,
            "register": config.ratelimit_register,
            "refresh": config.ratelimit_refresh,
            "api_keys": config.ratelimit_api_keys,
            "upload": config.ratelimit_upload,
            "embeddings": config.ratelimit_embeddings,
            "chat": config.ratelimit_chat,
        },
    }


def _register_blueprints(app: Flask) -> None:
    from api.routes import bp as meta_bp
    from auth.admin_routes import bp as admin_users_bp
    from auth.routes import bp as auth_bp
    from llm.routes import bp as models_bp
    from monitoring.routes import bp as monitoring_bp
    from openai_api.routes import bp as openai_bp
    from rag.routes import bp as documents_bp
    from sessions.routes import bp as chat_bp
    from workspaces.routes import bp as workspaces_bp

    for blueprint in (meta_bp, auth_bp, admin_users_bp, monitoring_bp, documents_bp, models_bp, chat_bp, openai_bp,
                      workspaces_bp):
        app.register_blueprint(blueprint)


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def domain_error(exc: DomainError) -> Response:
        status, code = status_and_code(exc)
        retry_after = getattr(exc, "retry_after_s", None)  # 503s and 429s say when to come back
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return error_response(status, code, exc.message, exc.details, headers)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = HTTP_CODES.get(status, "HTTP_ERROR")
        details: dict[str, Any] | None = {"limit": exc.description} if status == 429 else None
        message = f"Rate limit exceeded ({exc.description})" if status == 429 else (exc.description or exc.name)
        if status == 413:
            limit = request.max_content_length
            message = f"The request body is larger than the {limit} bytes this route accepts"
            details = {"limit_bytes": limit}
        headers = {"Allow": exc.get_response().headers["Allow"]} if status == 405 else None
        return error_response(status, code, message, details, headers)

    @app.errorhandler(OperationalError)
    def database_down(exc: OperationalError) -> Response:
        log.error("database error: %s", exc.orig)
        return error_response(503, "DATABASE_UNAVAILABLE", "The database is unavailable; retry shortly",
                              headers={"Retry-After": "5"})

    @app.errorhandler(RedisError)
    def redis_down(exc: RedisError) -> Response:
        log.error("redis error: %s", exc)
        return error_response(503, "STORAGE_UNAVAILABLE", "A shared store (Redis) is unavailable; retry shortly",
                              headers={"Retry-After": "5"})

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s (request %s)", request.method, request.path, g.get("request_id"))
        return error_response(500, "INTERNAL_ERROR", "An internal error occurred; it has been logged",
                              {"request_id": g.get("request_id")})


def _register_hooks(app: Flask) -> None:
    @app.before_request
    def start_workers() -> None:
        start_background_work(app)  # for servers other than wsgi.py (e.g. `flask run`); cheap after once

    @app.before_request
    def start_timer() -> None:
        g.request_started = time.perf_counter()
        g.request_id = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex

    @app.before_request
    def bound_body() -> None:
        """Only routes that take a file accept MAX_UPLOAD_MB; every other body is at most
        MAX_JSON_KB, refused by its Content-Length before a byte is read or anyone authenticated."""
        view = app.view_functions.get(request.endpoint or "")
        if getattr(view, "openapi", {}).get("multipart"):
            return
        limit_kb = app.extensions[EXTENSION_KEY].config.max_json_kb
        request.max_content_length = limit_kb * 1024
        if (request.content_length or 0) > limit_kb * 1024:
            raise PayloadTooLarge(f"The request body is larger than {limit_kb} KB (MAX_JSON_KB)",
                                  {"limit_bytes": limit_kb * 1024})

    @app.after_request
    def finish(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        response.headers["X-Request-ID"] = g.get("request_id", "")
        if response.status_code not in (429, 503):
            response.headers.pop("Retry-After", None)  # flask-limiter adds it to every answer
        if response.mimetype == "application/json":
            response.headers.setdefault("Cache-Control", "no-store")
        route = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
        started = g.get("request_started", time.perf_counter())
        app.extensions[EXTENSION_KEY].metrics.observe_request(
            request.method, route, response.status_code, time.perf_counter() - started
        )
        return response


def _register_cli(app: Flask) -> None:
    from auth.cli import users_cli
    from common.cli import db_cli
    from ingest.cli import ingest_command, ingest_worker_command
    from llm.cli import models_cli
    from maintenance.cli import backup_cli, integrity_cli

    app.cli.add_command(users_cli)
    app.cli.add_command(db_cli)
    app.cli.add_command(backup_cli)
    app.cli.add_command(integrity_cli)
    app.cli.add_command(ingest_command)
    app.cli.add_command(ingest_worker_command)
    app.cli.add_command(models_cli)


def _keep_private(data_dir: Path) -> None:
    """Everything this process writes (database, uploads, vectors, backups, secrets) is its user's
    alone: files 0600 and folders 0700 (umask 077), and the data folder of an older install is
    closed to other local users too, which hides whatever it already holds."""
    os.umask(0o077)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if data_dir.stat().st_uid == os.geteuid():
        data_dir.chmod(0o700)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _configure_logging(config: Config) -> None:
    """Standard error, and with LOG_FILE also that file, rotated at LOG_FILE_MAX_MB with
    LOG_FILE_BACKUPS old files kept (mode 0600: logs name users and documents)."""
    logging.basicConfig(level=getattr(logging, config.log_level.upper(), logging.INFO), format=LOG_FORMAT)
    if config.log_file:
        _log_to_file(Path(config.log_file).expanduser().resolve(), config.log_file_max_mb, config.log_file_backups)


def _log_to_file(path: Path, max_mb: int, backups: int) -> None:
    root = logging.getLogger()
    if any(isinstance(handler, RotatingFileHandler) and handler.baseFilename == str(path) for handler in root.handlers):
        return  # one handler per file, however many apps a process makes
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    handler = RotatingFileHandler(path, maxBytes=max_mb * 1024 * 1024, backupCount=backups, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
