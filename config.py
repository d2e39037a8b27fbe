"""One Config read from the environment, with documented defaults and a production check."""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

# Values people paste from tutorials; never accepted as a production secret.
KNOWN_WEAK_SECRETS = frozenset(
    {"secret", "changeme", "change-me", "password", "super-secret", "jwt-secret", "dev", "test"}
)
MIN_SECRET_LENGTH = 32
MIN_SECRET_DISTINCT_CHARS = 10
ENVIRONMENTS = ("development", "production", "testing")


RETRIEVAL_MODES = ("hybrid", "dense")
STATIC_DECODE_MODES = ("auto", "on", "off")


class ConfigError(ValueError):
    """The environment describes a configuration the server refuses to run with."""


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Config:
    """Every setting of the server. Each field names its environment variable in `ENV`."""

    app_env: str = "development"
    data_dir: Path = Path("data")
    database_url: str = ""
    jwt_secret_key: str = ""
    access_token_minutes: int = 15
    refresh_token_days: int = 30
    allow_registration: bool = True
    bootstrap_admin: bool = True
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    ratelimit_storage_uri: str = "memory://"
    ratelimit_default: str = "300 per minute"
    ratelimit_login: str = "10 per minute"
    ratelimit_register: str = "10 per hour"
    ratelimit_refresh: str = "60 per minute"
    ratelimit_api_keys: str = "30 per hour"
    ratelimit_upload: str = "60 per minute"
    ratelimit_embeddings: str = "60 per minute"
    ratelimit_key_prefix: str = "docchat"
    trusted_proxy_hops: int = 0
    cookie_secure: bool = False
    max_upload_mb: int = 50
    max_json_kb: int = 1024
    user_quota_mb: int = 0
    metrics_allowed_networks: tuple[str, ...] = (
        "127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7",
    )
    recent_errors_kept: int = 100
    cors_origins: tuple[str, ...] = ()
    chroma_host: str = ""
    chroma_port: int = 8000
    embedding_model_path: str = ""
    embedding_device: str = "auto"
    embedding_dtype: str = "auto"
    embedding_batch_size: int = 32
    retrieval_mode: str = "hybrid"  # hybrid (keywords fused with vectors) or dense
    chunk_tokens: int = 200
    chunk_overlap_tokens: int = 40
    parse_timeout_s: int = 120
    parse_memory_mb: int = 2048
    ingest_workers: int = 1
    ingest_queue_url: str = ""
    ingest_in_process: bool = True
    job_stale_s: int = 120
    upload_wait_timeout_s: int = 600
    search_top_k: int = 5
    load_model_at_start: bool = True
    llm_device: str = "auto"
    llm_dtype: str = "auto"
    llm_static_decode: str = "auto"  # static KV cache + CUDA graphs: auto (on CUDA), on, off
    model_cache_dir: Path | None = None
    llm_max_queue: int = 8
    llm_memory_budget_mb: int = 0  # models loaded beside the active one fit in this (0: no limit)
    llm_max_queue_per_user: int = 2
    llm_max_batch: int = 8
    llm_timeout_s: int = 120
    ratelimit_chat: str = "30 per minute"
    chat_top_k: int = 5
    chat_min_score: float = 0.35
    chat_context_tokens: int = 4096
    chat_question_tokens: int = 512
    chat_summary_tokens: int = 192
    chat_history_tokens: int = 1024
    chat_evidence_tokens: int = 320
    chat_source_tokens: int = 150
    chat_answer_sentences: int = 4
    chat_retention_days: int = 0
    maintenance_interval_s: int = 3600
    memory_check_s: int = 300
    memory_leak_checks: int = 6
    compact_interval_s: int = 86400  # storage compaction (VACUUM); 0: only on demand
    resource_log_s: int = 600  # a log line of CPU, memory and GPU; 0: none
    log_file: str = ""  # also log to this file, rotated
    log_file_max_mb: int = 20
    log_file_backups: int = 5
    alert_check_s: int = 30
    watchdog_s: int = 10  # how often the engine watchdog looks (0: never)
    engine_stall_s: int = 30  # a generation this long past its deadline is a hung engine: reload
    engine_failures: int = 3  # this many failed engine calls in a row: reload
    alert_memory_warning: float = 0.8  # process memory of the machine's RAM, and the fullest GPU's memory
    alert_memory_critical: float = 0.9
    alert_error_rate_warning: float = 0.05  # 5xx answers among the last 5 minutes' requests (20 or more)
    alert_error_rate_critical: float = 0.2
    alert_queue_warning: float = 0.8  # generation queue in use, of LLM_MAX_QUEUE
    alert_queue_critical: float = 1.0
    alert_webhook_url: str = ""
    auto_migrate: bool = True
    log_level: str = "INFO"
    models_file: Path = Path(__file__).with_name("models.json")

    # environment variable -> field name; docs/configuration.md's table mirrors this.
    ENV = {
        "APP_ENV": "app_env",
        "DATA_DIR": "data_dir",
        "DATABASE_URL": "database_url",
        "JWT_SECRET_KEY": "jwt_secret_key",
        "ACCESS_TOKEN_MINUTES": "access_token_minutes",
        "REFRESH_TOKEN_DAYS": "refresh_token_days",
        "ALLOW_REGISTRATION": "allow_registration",
        "BOOTSTRAP_ADMIN": "bootstrap_admin",
        "ARGON2_TIME_COST": "argon2_time_cost",
        "ARGON2_MEMORY_KIB": "argon2_memory_kib",
        "RATELIMIT_STORAGE_URI": "ratelimit_storage_uri",
        "RATELIMIT_DEFAULT": "ratelimit_default",
        "RATELIMIT_LOGIN": "ratelimit_login",
        "RATELIMIT_REGISTER": "ratelimit_register",
        "RATELIMIT_REFRESH": "ratelimit_refresh",
        "RATELIMIT_API_KEYS": "ratelimit_api_keys",
        "RATELIMIT_UPLOAD": "ratelimit_upload",
        "RATELIMIT_EMBEDDINGS": "ratelimit_embeddings",
        "RATELIMIT_KEY_PREFIX": "ratelimit_key_prefix",
        "TRUSTED_PROXY_HOPS": "trusted_proxy_hops",
        "COOKIE_SECURE": "cookie_secure",
        "MAX_UPLOAD_MB": "max_upload_mb",
        "MAX_JSON_KB": "max_json_kb",
        "USER_QUOTA_MB": "user_quota_mb",
        "METRICS_ALLOWED_NETWORKS": "metrics_allowed_networks",
        "RECENT_ERRORS_KEPT": "recent_errors_kept",
        "CORS_ORIGINS": "cors_origins",
        "CHROMA_HOST": "chroma_host",
        "CHROMA_PORT": "chroma_port",
        "EMBEDDING_MODEL_PATH": "embedding_model_path",
        "EMBEDDING_DEVICE": "embedding_device",
        "EMBEDDING_DTYPE": "embedding_dtype",
        "EMBEDDING_BATCH_SIZE": "embedding_batch_size",
        "RETRIEVAL_MODE": "retrieval_mode",
        "CHUNK_TOKENS": "chunk_tokens",
        "CHUNK_OVERLAP_TOKENS": "chunk_overlap_tokens",
        "PARSE_TIMEOUT_S": "parse_timeout_s",
        "PARSE_MEMORY_MB": "parse_memory_mb",
        "INGEST_WORKERS": "ingest_workers",
        "INGEST_QUEUE_URL": "ingest_queue_url",
        "INGEST_IN_PROCESS": "ingest_in_process",
        "JOB_STALE_S": "job_stale_s",
        "UPLOAD_WAIT_TIMEOUT_S": "upload_wait_timeout_s",
        "SEARCH_TOP_K": "search_top_k",
        "LOAD_MODEL_AT_START": "load_model_at_start",
        "LLM_DEVICE": "llm_device",
        "LLM_DTYPE": "llm_dtype",
        "LLM_STATIC_DECODE": "llm_static_decode",
        "MODEL_CACHE_DIR": "model_cache_dir",
        "LLM_MAX_QUEUE": "llm_max_queue",
        "LLM_MEMORY_BUDGET_MB": "llm_memory_budget_mb",
        "LLM_MAX_QUEUE_PER_USER": "llm_max_queue_per_user",
        "LLM_MAX_BATCH": "llm_max_batch",
        "LLM_TIMEOUT_S": "llm_timeout_s",
        "RATELIMIT_CHAT": "ratelimit_chat",
        "CHAT_TOP_K": "chat_top_k",
        "CHAT_MIN_SCORE": "chat_min_score",
        "CHAT_CONTEXT_TOKENS": "chat_context_tokens",
        "CHAT_QUESTION_TOKENS": "chat_question_tokens",
        "CHAT_SUMMARY_TOKENS": "chat_summary_tokens",
        "CHAT_HISTORY_TOKENS": "chat_history_tokens",
        "CHAT_EVIDENCE_TOKENS": "chat_evidence_tokens",
        "CHAT_SOURCE_TOKENS": "chat_source_tokens",
        "CHAT_ANSWER_SENTENCES": "chat_answer_sentences",
        "CHAT_RETENTION_DAYS": "chat_retention_days",
        "MAINTENANCE_INTERVAL_S": "maintenance_interval_s",
        "MEMORY_CHECK_S": "memory_check_s",
        "MEMORY_LEAK_CHECKS": "memory_leak_checks",
        "COMPACT_INTERVAL_S": "compact_interval_s",
        "RESOURCE_LOG_S": "resource_log_s",
        "LOG_FILE": "log_file",
        "LOG_FILE_MAX_MB": "log_file_max_mb",
        "LOG_FILE_BACKUPS": "log_file_backups",
        "ALERT_CHECK_S": "alert_check_s",
        "WATCHDOG_S": "watchdog_s",
        "ENGINE_STALL_S": "engine_stall_s",
        "ENGINE_FAILURES": "engine_failures",
        "ALERT_MEMORY_WARNING": "alert_memory_warning",
        "ALERT_MEMORY_CRITICAL": "alert_memory_critical",
        "ALERT_ERROR_RATE_WARNING": "alert_error_rate_warning",
        "ALERT_ERROR_RATE_CRITICAL": "alert_error_rate_critical",
        "ALERT_QUEUE_WARNING": "alert_queue_warning",
        "ALERT_QUEUE_CRITICAL": "alert_queue_critical",
        "ALERT_WEBHOOK_URL": "alert_webhook_url",
        "AUTO_MIGRATE": "auto_migrate",
        "LOG_LEVEL": "log_level",
        "MODELS_FILE": "models_file",
    }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Config":
        """Read every known variable from `environ` (default os.environ), then apply overrides."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}  # each coerced to its field's type
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        for var, name in cls.ENV.items():
            if var in environ and environ[var] != "":
                values[name] = _coerce(types[name], environ[var])
        values.update(overrides)
        return cls(**values).resolved()

    @classmethod
    def for_testing(cls, data_dir: Path, **overrides: Any) -> "Config":
        """A fast, isolated configuration for tests: cheap password hashing, no admin bootstrap."""
        defaults: dict[str, Any] = {
            "app_env": "testing",
            "data_dir": Path(data_dir),
            "jwt_secret_key": secrets.token_urlsafe(48),
            "bootstrap_admin": False,
            "load_model_at_start": False,
            "argon2_time_cost": 1,
            "argon2_memory_kib": 8192,
            "ratelimit_key_prefix": "test-" + secrets.token_hex(4),
        }
        defaults.update(overrides)
        return cls(**defaults).resolved()

    def resolved(self) -> "Config":
        """Fill values derived from others (database URL under the data directory)."""
        data_dir = Path(self.data_dir).expanduser().resolve()
        database_url = self.database_url or f"sqlite:///{data_dir / 'app.db'}"
        if self.app_env not in ENVIRONMENTS:
            raise ConfigError(f"APP_ENV must be one of {', '.join(ENVIRONMENTS)}, not {self.app_env!r}")
        if self.retrieval_mode not in RETRIEVAL_MODES:
            raise ConfigError(f"RETRIEVAL_MODE must be one of {', '.join(RETRIEVAL_MODES)}, not {self.retrieval_mode!r}")
        if self.llm_static_decode not in STATIC_DECODE_MODES:
            raise ConfigError(f"LLM_STATIC_DECODE must be one of {', '.join(STATIC_DECODE_MODES)}, "
                              f"not {self.llm_static_decode!r}")
        resolved = dataclasses.replace(self, data_dir=data_dir, database_url=database_url,
                                       cookie_secure=self.cookie_secure or self.is_production)
        return dataclasses.replace(resolved, model_cache_dir=resolved.model_cache)

    @property
    def model_cache(self) -> Path:
        """Where converted models are kept: MODEL_CACHE_DIR, or a folder in the data directory."""
        return Path(self.model_cache_dir).expanduser().resolve() if self.model_cache_dir else self.data_dir / "model-cache"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    def check_production(self) -> None:
        """Refuse a production start without a strong JWT secret from the environment."""
        if not self.is_production:
            return
        problem = secret_weakness(self.jwt_secret_key)
        if problem:
            raise ConfigError(f"APP_ENV=production needs a strong JWT_SECRET_KEY: {problem}")

    def with_secret(self) -> "Config":
        """Outside production, a missing secret is generated once and kept in the data directory,
        so tokens survive restarts without anyone choosing a secret."""
        if self.jwt_secret_key or self.is_production:
            return self
        return dataclasses.replace(self, jwt_secret_key=_persistent_secret(self.data_dir / "jwt_secret"))

    @property
    def flask_secret_key(self) -> str:
        """A key for Flask's own signing, derived from the JWT secret so one secret is enough."""
        return hmac.new(self.jwt_secret_key.encode(), b"flask-secret-key", hashlib.sha256).hexdigest()


def secret_weakness(secret: str) -> str | None:
    """Why `secret` is too weak to sign tokens with, or None when it is acceptable."""
    if not secret:
        return "it is not set"
    if secret.strip().lower() in KNOWN_WEAK_SECRETS:
        return "it is a well-known placeholder"
    if len(secret) < MIN_SECRET_LENGTH:
        return f"it has {len(secret)} characters, at least {MIN_SECRET_LENGTH} are needed"
    if len(set(secret)) < MIN_SECRET_DISTINCT_CHARS:
        return "it repeats too few distinct characters"
    return None


def _persistent_secret(path: Path) -> str:
    """Read the secret at `path`, creating it atomically (write aside, then link) on first use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        draft = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(draft, path)
        except FileExistsError:  # another worker won the race; use its secret
            pass
        finally:
            os.unlink(draft)
    return path.read_text().strip()


def _coerce(kind: object, raw: str) -> object:
    kind = str(kind)
    if kind == "bool":
        return _flag(raw)
    if kind == "int":
        try:
            return int(raw)
        except ValueError as exc:
            raise ConfigError(f"expected a whole number, got {raw!r}") from exc
    if kind == "float":
        try:
            return float(raw)
        except ValueError as exc:
            raise ConfigError(f"expected a number, got {raw!r}") from exc
    if kind.startswith("Path"):
        return Path(raw)
    if kind.startswith("tuple"):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw
