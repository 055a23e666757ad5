"""One registry-wide write lock for publishing decisions that must not interleave."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from registry.models import AuditHead


def serialize_writes(db: Session) -> None:
    """Hold the audit chain's head row for the rest of this transaction.

    Every audited change takes this row anyway, so using it as the lock adds no new
    contention point: a row lock on PostgreSQL, the database write lock on SQLite. Callers
    re-read what they decide on after taking it (commit vs gc, first key creation, tags).
    """
    db.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq))
