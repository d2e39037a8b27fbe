"""gunicorn settings for `make run` (and production): read from the environment.

The embedded defaults (SQLite, in-process Chroma, memory:// limits, the model in this process)
want ONE worker process with threads; raise WEB_WORKERS only with the scale-out settings.
"""
import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_WORKERS", "1"))
threads = int(os.environ.get("WEB_THREADS", "8"))
worker_class = "gthread"  # threads stream Server-Sent Events without blocking other requests
timeout = int(os.environ.get("WEB_TIMEOUT", "120"))
graceful_timeout = 30
accesslog = os.environ.get("ACCESS_LOG", "-")
control_socket_disable = True  # gunicorn 27's admin socket is shared per user; several servers would clash
