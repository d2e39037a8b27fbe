"""The services one app built, and how a route finds them."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from auth.api_keys import ApiKeyService
from auth.blocklist import RevocationList
from auth.users import UserService
from common.database import Database
from config import Config
from llm.registry import ModelRegistry
from llm.service import LLMService
from maintenance.integrity import IntegrityChecker
from maintenance.schedule import MaintenanceScheduler
from monitoring.error_stats import ErrorStats
from monitoring.health import HealthService
from monitoring.metrics import Metrics
from openai_api.service import CompletionService
from rag.documents import DocumentService
from rag.jobs import IngestionWorkers
from rag.retriever import Retriever
from rag.vector_store import VectorStore
from sessions.chat import ChatService
from sessions.service import SessionService

EXTENSION_KEY = "docchat"
LIMITER_KEY = "docchat_limiter"  # the app's flask-limiter instance (api/limits.py)


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

    def close(self) -> None:
        """Stop background work and release connections (tests build many apps in one process)."""
        self.ingestion.stop()
        self.maintenance.stop()
        self.llm.close()
        self.db.close()


def services() -> Services:
    """The services of the app serving the current request."""
    return current_app.extensions[EXTENSION_KEY]
