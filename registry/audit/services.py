"""Recording and verifying the hash-chained audit log."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from registry.audit.events import session_request_info
from registry.db import utcnow
from registry.models import AuditEvent, AuditHead, User

GENESIS = "0" * 64


def event_hash(event: AuditEvent) -> str:
    """The sha256 over every recorded field and the previous event's hash."""
    body = {
        "seq": event.seq,
        "created_at": event.created_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "tag": event.tag,
        "actor_id": event.actor_id,
        "actor": event.actor,
        "target": event.target,
        "model_id": event.model_id,
        "version_id": event.version_id,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "details": event.details,
        "prev_hash": event.prev_hash,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def record_event(
    db: Session,
    tag: str,
    *,
    actor: User | None = None,
    target: str = "",
    model_id: int | None = None,
    version_id: int | None = None,
    details: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> AuditEvent:
    """Append an event in the caller's transaction (committed with the change it records).

    Where the request came from is read from the session (``registry.unit_of_work``)."""
    head = _lock_head(db)
    info = session_request_info(db)
    event = AuditEvent(
        seq=head.seq,
        created_at=(now or utcnow()).astimezone(dt.UTC),
        tag=tag,
        actor_id=actor.id if actor is not None else None,
        actor=actor.email if actor is not None else "anonymous",
        target=target[:300],
        model_id=model_id,
        version_id=version_id,
        ip=info.ip[:64],
        user_agent=info.user_agent[:300],
        details=details or {},
        prev_hash=head.hash,
    )
    event.hash = event_hash(event)
    db.add(event)
    db.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=event.hash))
    db.flush()
    return event


def _lock_head(db: Session) -> AuditHead:
    """Take the chain head, incrementing its sequence; the UPDATE serialises writers."""
    result = db.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(seq=AuditHead.seq + 1)
        .returning(AuditHead.seq, AuditHead.hash)
    ).one_or_none()
    if result is None:
        db.add(AuditHead(id=1, seq=1, hash=GENESIS))
        db.flush()
        return AuditHead(id=1, seq=1, hash=GENESIS)
    return AuditHead(id=1, seq=result.seq, hash=result.hash)


@dataclasses.dataclass(frozen=True)
class ChainProblem:
    seq: int
    event_id: int | None
    problem: str

    def __str__(self) -> str:
        ident = f"event #{self.seq}" + (f" (id {self.event_id})" if self.event_id else "")
        return f"{ident}: {self.problem}"


def verify_chain(db: Session, batch: int = 1000) -> list[ChainProblem]:
    """Walk the chain in order; report edited, inserted or deleted events."""
    problems: list[ChainProblem] = []
    expected_prev, expected_seq = GENESIS, 1
    for event in _iter_events(db, batch):
        if event.seq != expected_seq:
            problems.append(
                ChainProblem(expected_seq, None, f"missing (next present is #{event.seq})")
            )
        if event.prev_hash != expected_prev:
            problems.append(
                ChainProblem(event.seq, event.id, "previous-hash link broken (deleted or edited)")
            )
        if event_hash(event) != event.hash:
            problems.append(ChainProblem(event.seq, event.id, f"contents edited ({event.tag})"))
        expected_prev, expected_seq = event.hash, event.seq + 1
    head = db.get(AuditHead, 1)
    if head is not None and (head.seq != expected_seq - 1 or head.hash != expected_prev):
        problems.append(
            ChainProblem(head.seq, None, "chain ends early: events at the end were deleted")
        )
    return problems


def _iter_events(db: Session, batch: int) -> Iterator[AuditEvent]:
    last = 0
    while True:
        rows = db.scalars(
            select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        for row in rows:  # keep memory flat without touching the caller's other objects
            db.expunge(row)
