"""The audit log: an append-only record of security events (who, what, target, when, from where).

Routes record events as they happen (sign-ins, passwords, roles, keys, deletions, swaps) and the
backup CLI records backups and restores; GET /admin/audit pages through them. Nothing updates or
deletes a row, and a backup carries the table like every other.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, mapped_column

from common.database import Base, Database, UTCDateTime, utcnow

EVENTS = ("login.succeeded", "login.failed", "password.changed", "password.reset", "user.role_changed",
          "user.disabled", "user.enabled", "user.deleted", "api_key.created", "api_key.revoked",
          "member.added", "member.removed", "member.changed", "document.deleted", "workspace.deleted",
          "backup.created", "backup.restored", "model.swapped", "model.reloaded",
          "maintenance.run")


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)  # a username, or None
    event: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(255), nullable=True)
    address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    details: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str | None
    event: str
    target: str | None
    address: str | None
    details: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at.isoformat().replace("+00:00", "Z"), "actor": self.actor,
                "event": self.event, "target": self.target, "address": self.address, "details": self.details}


class AuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, event: str, actor: str | None = None, target: str | None = None, address: str | None = None,
               details: dict[str, Any] | None = None) -> None:
        if event not in EVENTS:
            raise ValueError(f"unknown audit event {event!r}")
        with self._db.session() as session:
            session.add(AuditEvent(event=event, actor=actor, target=(target or None) and target[:255],
                                   address=address and address[:64],
                                   details=json.dumps(details, sort_keys=True) if details else None))

    def page(self, actor: str | None = None, event: str | None = None, page: int = 1,
             per_page: int = 50) -> tuple[list[AuditEntry], int]:
        """Newest first, filtered by actor (username) and event; (this page, total matching)."""
        conditions = [column == value for column, value in ((AuditEvent.actor, actor), (AuditEvent.event, event))
                      if value]
        with self._db.session() as session:
            total = session.scalar(select(func.count()).select_from(AuditEvent).where(*conditions)) or 0
            rows = session.scalars(select(AuditEvent).where(*conditions).order_by(AuditEvent.id.desc())
                                   .offset((page - 1) * per_page).limit(per_page)).all()
            return [_entry(row) for row in rows], total


def _entry(row: AuditEvent) -> AuditEntry:
    return AuditEntry(row.id, row.at, row.actor, row.event, row.target, row.address,
                      json.loads(row.details) if row.details else None)
