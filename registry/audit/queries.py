"""Reading the audit log: filtered event lists and the downloaders of a version."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from client.shared import rules
from registry.audit.services import RECORDED
from registry.audit.tags import EventTag
from registry.models import AuditEvent, User, Version


@dataclasses.dataclass(frozen=True)
class EventFilter:
    """Filters for ``/api/v1/audit``; ``action`` matches a tag or a ``subject:`` prefix."""

    actor: str | None = None  # email or user id
    model_id: int | None = None
    version_id: int | None = None
    action: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


def list_events(
    db: Session, filters: EventFilter, *, limit: int = 100, after_id: int = 0
) -> Sequence[AuditEvent]:
    """Events in the order they were recorded (sealed and pending), after id ``after_id``.

    Pending events have no ``seq`` yet, so pages follow the id, which every event has."""
    query = select(AuditEvent).where(AuditEvent.id > after_id)
    if filters.actor:
        if (actor_id := rules.parse_id(filters.actor)) is not None:
            query = query.where(AuditEvent.actor_id == actor_id)
        else:
            query = query.where(func.lower(AuditEvent.actor) == filters.actor.lower())
    if filters.model_id is not None:
        query = query.where(AuditEvent.model_id == filters.model_id)
    if filters.version_id is not None:
        query = query.where(AuditEvent.version_id == filters.version_id)
    if filters.action:
        if filters.action.endswith(":"):
            query = query.where(AuditEvent.tag.startswith(filters.action))
        else:
            query = query.where(AuditEvent.tag == filters.action)
    if filters.since is not None:
        query = query.where(AuditEvent.created_at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEvent.created_at < filters.until)
    return db.scalars(query.order_by(AuditEvent.id).limit(limit)).all()


def event_dict(event: AuditEvent) -> dict[str, Any]:
    """An event as the API and the exports show it (``seq`` is null while pending)."""
    return {
        "id": event.id,
        "seq": event.seq,
        "time": iso(event.created_at),
        "action": event.tag,
        **{name: getattr(event, name) for name in RECORDED},
    }


@dataclasses.dataclass(frozen=True)
class Downloader:
    """Everyone who downloaded files of a version: whom to notify after a withdrawal."""

    user_id: int | None
    email: str
    display_name: str
    first_download: dt.datetime
    last_download: dt.datetime
    downloads: int
    files: list[str]
    ips: list[str]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["first_download"] = iso(self.first_download)
        data["last_download"] = iso(self.last_download)
        return data


def iso(value: dt.datetime) -> str:
    """UTC ISO-8601 with a ``Z``."""
    return value.isoformat().replace("+00:00", "Z")


def downloaders(db: Session, version: Version) -> list[Downloader]:
    """One row per downloader of ``version`` (anonymous downloads grouped together)."""
    events = db.scalars(
        select(AuditEvent)
        .where(AuditEvent.version_id == version.id, AuditEvent.tag == EventTag.VERSION_DOWNLOAD)
        .order_by(AuditEvent.id)
    ).all()
    groups: dict[int | None, list[AuditEvent]] = {}
    for event in events:
        groups.setdefault(event.actor_id, []).append(event)
    names = {
        u.id: u
        for u in db.scalars(select(User).where(User.id.in_([k for k in groups if k is not None])))
    }
    rows = []
    for user_id, items in groups.items():
        user = names.get(user_id) if user_id is not None else None
        rows.append(
            Downloader(
                user_id=user_id,
                email=user.email if user else items[0].actor,
                display_name=user.display_name if user else "",
                first_download=items[0].created_at,
                last_download=items[-1].created_at,
                downloads=len(items),
                files=sorted({str(e.details.get("path", "")) for e in items}),
                ips=sorted({e.ip for e in items if e.ip}),
            )
        )
    return sorted(rows, key=lambda r: r.first_download)
