"""gunicorn settings for `make run` (and production): read from the environment.

The embedded defaults (SQLite, in-process Chroma, memory:// limits, the model in this process)
want ONE worker process with threads; raise WEB_WORKERS only with the scale-out settings.
"""
import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_WORKERS", "1"))
# Every request waiting for an answer holds a thread, and at most LLM_MAX_QUEUE can wait: eight
# threads more than that are always free for /health, logins, uploads and the UI.
threads = int(os.environ.get("WEB_THREADS") or int(os.environ.get("LLM_MAX_QUEUE") or 8) + 8)
worker_class = "gthread"  # threads stream Server-Sent Events without blocking other requests
timeout = int(os.environ.get("WEB_TIMEOUT", "120"))
graceful_timeout = 30
accesslog = os.environ.get("ACCESS_LOG", "-")
umask = 0o077  # files the server writes are its user's alone (app.py sets it for every entry point too)
control_socket_disable = True  # gunicorn 27's admin socket is shared per user; several servers would clash


def _check_scale_out() -> None:
    """Several worker processes cannot share the embedded stores: refuse clearly instead of racing."""
    missing = [name for name in ("DATABASE_URL", "CHROMA_HOST") if not os.environ.get(name)]
    if workers > 1 and missing:
        raise SystemExit(f"WEB_WORKERS={workers} needs the scale-out settings {', '.join(missing)} "
                         "(PostgreSQL and a Chroma server; see docs/scale-out.md)")
    if workers > 1 and os.environ.get("RATELIMIT_STORAGE_URI", "memory://").startswith("memory://"):
        print(f"warning: WEB_WORKERS={workers} with memory:// rate limits: each worker counts alone "
              "(set RATELIMIT_STORAGE_URI=redis://...)", flush=True)


_check_scale_out()
