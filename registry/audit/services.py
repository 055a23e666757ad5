"""Recording audit events: an insert in the caller's transaction, nothing locked.

The event is *pending* until the sealer (``registry.audit.sealer``) gives it its place in
the log and commits it to a signed checkpoint; readers list pending events too.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy.orm import Session

from registry.audit.events import session_request_info
from registry.audit.tags import EventTag, known_tag
from registry.db import utcnow
from registry.models import AuditEvent, User

LEAF_FORMAT = "roentgen-registry/audit-event/v1"
# What an event records besides its tag and time, under its model attribute names.
RECORDED = ("actor_id", "actor", "target", "model_id", "version_id", "ip", "user_agent", "details")


def record_event(
    db: Session,
    tag: EventTag | str,
    *,
    actor: User | None = None,
    target: str = "",
    model_id: int | None = None,
    version_id: int | None = None,
    details: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> AuditEvent:
    """Append an event in the caller's transaction (committed with the change it records).

    Where the request came from is read from the session (``registry.unit_of_work``). Only
    an INSERT: concurrent requests never wait for each other here."""
    info = session_request_info(db)
    event = AuditEvent(
        created_at=(now or utcnow()).astimezone(dt.UTC),
        tag=str(known_tag(str(tag))),
        actor_id=actor.id if actor is not None else None,
        actor=actor.email if actor is not None else "anonymous",
        target=target[:300],
        model_id=model_id,
        version_id=version_id,
        ip=info.ip[:64],
        user_agent=info.user_agent[:300],
        details=details or {},
    )
    db.add(event)
    db.flush()
    return event


def event_leaf(event: AuditEvent) -> bytes:
    """The exact bytes that stand for a sealed event in the log's Merkle tree."""
    if event.seq is None:
        raise ValueError(f"audit event {event.id} is not sealed yet")
    body = {
        "format": LEAF_FORMAT,
        "seq": event.seq,
        "id": event.id,
        "created_at": event.created_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "tag": event.tag,
        **{name: getattr(event, name) for name in RECORDED},
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
