"""The composition root: every component and service, built once per app from the Config.

Nothing else wires parts together: create_app() calls build_services() (or takes a Services a test
built), routes find them through common.context.services(), and the services take their
collaborators in their constructors.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from answers.grounding import GroundingChecker
from answers.policy import AnswerPolicy
from answers.step import AnswerStep, ChatSettings
from auth.api_keys import ApiKeyService
from auth.blocklist import RevocationList
from auth.passwords import PasswordHasher
from auth.users import UserService
from common.database import Database
from common.devices import resolve_placement
from common.errors import NotFound
from config import Config
from ingest.ingestion import IngestionPipeline
from ingest.jobs import IngestionWorkers, make_queue
from ingest.sandbox import ParseLimits
from ingest.sniff import detect_type
from llm.recovery import EngineRecovery
from llm.registry import ModelRegistry
from llm.service import LLMService, build_llm_service
from maintenance.compaction import StorageCompactor
from maintenance.integrity import IntegrityChecker
from maintenance.schedule import LeakWatch, MaintenanceScheduler
from monitoring.alerts import CRITICAL, Alerts, Rule, Webhook
from monitoring.audit import AuditLog
from monitoring.error_stats import ErrorStats
from monitoring.health import HealthService
from monitoring.metrics import Metrics
from monitoring.search_stats import SearchStats
from monitoring.system import SystemMonitor
from openai_api.service import CompletionService
from rag.documents import DocumentService
from rag.embedder import Embedder, packaged_model_path
from rag.keywords import KeywordIndex
from rag.repository import DocumentRepository
from rag.retriever import Retriever
from rag.spaces import Spaces
from rag.vector_store import VectorStore, make_client
from sessions.chat import ChatService
from sessions.repository import SessionRepository
from sessions.service import SessionService
from sessions.summarizer import Summarizer
from workspaces.service import WorkspaceService


@dataclass
class Services:
    config: Config
    db: Database
    users: UserService
    api_keys: ApiKeyService
    revocations: RevocationList
    error_stats: ErrorStats
    metrics: Metrics
    health: HealthService
    models: ModelRegistry
    vectors: VectorStore
    documents: DocumentService
    retriever: Retriever
    ingestion: IngestionWorkers
    llm: LLMService
    sessions: SessionService
    chat: ChatService
    maintenance: MaintenanceScheduler
    completions: CompletionService
    integrity: IntegrityChecker
    audit: AuditLog
    workspaces: WorkspaceService
    alerts: Alerts
    recovery: EngineRecovery
    search_stats: SearchStats
    compactor: StorageCompactor

    def close(self) -> None:
        """Stop background work and release connections (tests build many apps in one process)."""
        self.alerts.close()
        self.ingestion.stop()
        self.maintenance.stop()
        self.llm.close()
        self.vectors.keywords.close()
        self.db.close()


@dataclass
class DocumentStack:
    """Reading, storing and searching documents, with the accounts and workspaces they belong to:
    what build_services() and the ingestion benchmark (bench/ingest.py) build the same way."""

    db: Database
    users: UserService
    workspaces: WorkspaceService
    repository: DocumentRepository
    vectors: VectorStore
    embedder: Callable[[], Embedder]
    pipeline: IngestionPipeline
    ingestion: IngestionWorkers
    documents: DocumentService
    retriever: Retriever


def build_document_stack(config: Config, embedder: Callable[[], Embedder] | None = None,
                         search_stats: SearchStats | None = None) -> DocumentStack:
    """The database (migrated when AUTO_MIGRATE), the stores, the ingestion workers (not started)
    and the services over them; `embedder` in place of the configured model (a benchmark's probe)."""
    db = Database(config.database_url)
    if config.auto_migrate:
        db.migrate()
    hasher = PasswordHasher(time_cost=config.argon2_time_cost, memory_kib=config.argon2_memory_kib)
    keywords = KeywordIndex.open(db.engine, config.data_dir)
    vectors = VectorStore(lambda: make_client(config.chroma_dir, config.chroma_host, config.chroma_port), keywords)
    repository = DocumentRepository(db)
    embedder = embedder or _embedder_provider(config)
    pipeline = IngestionPipeline(
        repository, vectors, embedder, config.uploads_dir,
        ParseLimits(timeout_s=config.parse_timeout_s, memory_mb=config.parse_memory_mb),
        chunk_tokens=config.chunk_tokens, overlap_tokens=config.chunk_overlap_tokens,
    )
    ingestion = IngestionWorkers(pipeline, repository, make_queue(config.ingest_queue_url, config.data_dir / "ingest-queue.db"),
                                 threads=config.ingest_workers, stale_s=config.job_stale_s,
                                 consume=config.ingest_in_process)
    users = UserService(db, hasher, allow_registration=config.allow_registration,
                        before_delete=[lambda user_id: workspaces.forget_user(user_id),
                                       lambda user_id: documents.hand_over(user_id, workspaces.first_owner)],
                        on_delete=[lambda user_id: documents.purge_user(user_id)])
    workspaces = WorkspaceService(db, users)
    spaces = Spaces(workspaces)
    documents = DocumentService(repository, vectors, config.uploads_dir, ingestion.enqueue, spaces, detect_type,
                                quota_bytes=config.user_quota_mb * 1024 * 1024)
    workspaces.on_delete(documents.purge_workspace)
    retriever = Retriever(vectors, repository, embedder, spaces, hybrid=config.retrieval_mode == "hybrid",
                          on_search=search_stats.record if search_stats else None)
    return DocumentStack(db, users, workspaces, repository, vectors, embedder, pipeline, ingestion, documents,
                         retriever)


def build_services(config: Config) -> Services:
    """Every component and service, built once per app from the config."""
    search_stats = SearchStats()
    stack = build_document_stack(config, search_stats=search_stats)
    db, embedder, retriever = stack.db, stack.embedder, stack.retriever
    models = ModelRegistry.from_file(config.models_file)
    monitor = SystemMonitor()
    vectors = stack.vectors
    llm = _llm_service(config, models)
    integrity = IntegrityChecker(db, vectors)
    step = AnswerStep(retriever, llm, AnswerPolicy(GroundingChecker(embedder)), _chat_settings(config))
    session_repository = SessionRepository(db)
    sessions = SessionService(session_repository, config.chat_retention_days,
                              check_scope=lambda user_id, scope: retriever.targets(user_id, scope, strict=True),
                              check_model=lambda model: _known_model(llm, model))
    revocations = RevocationList(db)
    metrics = Metrics(monitor)
    alerts = _alerts(config, monitor, metrics, llm)
    compactor = StorageCompactor(db.engine, [config.data_dir / "keywords.db"])
    recovery = EngineRecovery(llm.manager, llm.scheduler, config.data_dir, config.engine_stall_s,
                              config.engine_failures)
    maintenance = _maintenance(config, sessions, integrity, monitor, revocations, alerts, compactor)
    maintenance.add("engine_watchdog", config.watchdog_s, recovery.watch)
    llm.scheduler.observe(lambda model, result: metrics.observe_generation(model, result.ttft_s,
                                                                           result.decode_tokens_per_s))
    return Services(
        config=config,
        db=db,
        users=stack.users,
        api_keys=ApiKeyService(db),
        revocations=revocations,
        error_stats=ErrorStats(config.recent_errors_kept),
        metrics=metrics,
        health=HealthService(db, llm, monitor, checks=[integrity, maintenance, alerts],
                             sections={"maintenance": maintenance.status, "alerts": alerts.status,
                                       "models_loading": llm.manager.progress}),
        models=models,
        vectors=vectors,
        documents=stack.documents,
        retriever=retriever,
        ingestion=stack.ingestion,
        llm=llm,
        sessions=sessions,
        chat=ChatService(session_repository, step, llm, Summarizer(llm.generate, config.chat_summary_tokens)),
        maintenance=maintenance,
        completions=CompletionService(llm, step, embedder),
        integrity=integrity,
        audit=AuditLog(db),
        workspaces=stack.workspaces,
        alerts=alerts,
        recovery=recovery,
        search_stats=search_stats,
        compactor=compactor,
    )


def _known_model(llm: LLMService, model_id: str) -> None:
    if not llm.manager.knows(model_id):
        raise NotFound(f"No model {model_id!r} in models.json (GET /models lists them)", {"model": model_id})


def _alerts(config: Config, monitor: SystemMonitor, metrics: Metrics, llm: LLMService) -> Alerts:
    """The alert rules (ALERT_* settings); GPU memory at critical frees the CUDA cache between batches."""
    memory = (config.alert_memory_warning, config.alert_memory_critical)
    alerts = Alerts([
        Rule("process_memory", monitor.process_memory_share, *memory, "process memory of the machine's RAM"),
        Rule("gpu_memory", monitor.gpu_memory_share, *memory, "memory in use on the fullest GPU"),
        Rule("error_rate", metrics.window.error_rate, config.alert_error_rate_warning,
             config.alert_error_rate_critical, "server errors (5xx) among the last 5 minutes' requests"),
        Rule("queue_saturation", llm.scheduler.saturation, config.alert_queue_warning, config.alert_queue_critical,
             "generation queue in use"),
        Rule("model_failed", lambda: float(llm.manager.failed() is not None), 1.0, 1.0,
             "models that failed to load (1: one did)"),
    ], Webhook(config.alert_webhook_url) if config.alert_webhook_url else None)
    llm.scheduler.between_batches(lambda: monitor.free_gpu_cache() if alerts.level("gpu_memory") == CRITICAL
                                  else None)
    return alerts


def _maintenance(config: Config, sessions: SessionService, integrity: IntegrityChecker, monitor: SystemMonitor,
                 revocations: RevocationList, alerts: Alerts, compactor: StorageCompactor) -> MaintenanceScheduler:
    def retention() -> str:
        if sessions.retention_days <= 0:
            return "retention is off (CHAT_RETENTION_DAYS=0)"
        return f"deleted {len(sessions.expire_inactive())} idle session(s)"

    leak_watch = LeakWatch(monitor.memory_readings, checks=config.memory_leak_checks)
    every = config.maintenance_interval_s
    return MaintenanceScheduler({
        "session_retention": (every, retention),
        "orphaned_chunks": (every, integrity.remove_orphans),
        "stale_chunks": (every, integrity.remove_stale_chunks),
        "revoked_logins": (every, lambda: f"forgot {revocations.prune()} revoked login(s) past their expiry"),
        "memory_watch": (config.memory_check_s, leak_watch.sample),
        "alerts": (config.alert_check_s, alerts.check),
        "compact_storage": (config.compact_interval_s, compactor.run),
        "resource_log": (config.resource_log_s, monitor.resource_line),
    }, leak_watch, deferred={"compact_storage"})


def _chat_settings(config: Config) -> ChatSettings:
    return ChatSettings(top_k=config.chat_top_k, min_score=config.chat_min_score,
                        context_tokens=config.chat_context_tokens, question_tokens=config.chat_question_tokens,
                        history_tokens=config.chat_history_tokens, evidence_tokens=config.chat_evidence_tokens,
                        source_tokens=config.chat_source_tokens, answer_sentences=config.chat_answer_sentences)


def _llm_service(config: Config, models: ModelRegistry) -> LLMService:
    return build_llm_service(models, config.llm_device, config.llm_dtype, config.model_cache,
                             max_queue=config.llm_max_queue, max_batch=config.llm_max_batch,
                             timeout_s=config.llm_timeout_s, max_queue_per_user=config.llm_max_queue_per_user,
                             static_decode=config.llm_static_decode, memory_budget_mb=config.llm_memory_budget_mb)


def _embedder_provider(config: Config) -> Callable[[], Embedder]:
    """The embedding model loads on first use (not at start), once per process."""
    path = Path(config.embedding_model_path) if config.embedding_model_path else packaged_model_path()
    device, dtype = resolve_placement(config.embedding_device, config.embedding_dtype)
    return lambda: Embedder.shared(path, device, dtype, config.embedding_batch_size)
