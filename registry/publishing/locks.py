"""One registry-wide write lock for publishing decisions that must not interleave."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, update
from sqlalchemy.orm import Session

from registry.models import AuditHead

HELD = "registry.write_lock_held"  # in ``db.info`` while the transaction holds the lock


def serialize_writes(db: Session) -> None:
    """Hold the ``audit_head`` row for the rest of this transaction.

    A row lock on PostgreSQL, the database write lock on SQLite; audit events do not take
    it (they are plain inserts). Callers re-read what they decide on after taking it (commit
    vs gc, first key creation, tags) and make no storage or network call while holding it:
    work that has to touch the blob store at commit asks ``holds_write_lock`` and does it
    after the commit instead.
    """
    db.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq))
    db.info[HELD] = True


def holds_write_lock(db: Session) -> bool:
    """Whether ``db``'s current transaction took ``serialize_writes``."""
    return bool(db.info.get(HELD))


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _released(db: Session, *_: Any) -> None:
    db.info.pop(HELD, None)
