"""Putting mail and webhook deliveries into the outbox, in the caller's transaction.

Nothing is sent here: the worker (``registry.mail.worker``) delivers what is committed, so
a request never waits for a mail server and a rolled-back request sends nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from registry.errors import Conflict
from registry.mail.site import Site
from registry.models import OutboxMessage

SECURITY_FOOTER = "You get this mail because it concerns the security of your account."
SETTINGS_PATH = "/account/notifications"


def footer(site: Site, *, optional: bool) -> str:
    """The closing lines: which registry wrote, and where to stop such mail if one may."""
    why = (
        f"Choose what the registry tells you at {site.link(SETTINGS_PATH)}."
        if optional
        else SECURITY_FOOTER
    )
    return f"\n\n-- \n{site.name}, {site.url}\n{why}\n"


def enqueue_mail(
    db: Session,
    site: Site,
    *,
    to: str,
    subject: str,
    text: str,
    topic: str,
    now: dt.datetime,
    user_id: int | None = None,
    optional: bool = True,
    dedupe_key: str | None = None,
) -> None:
    """Queue one mail; ``optional`` mail says where to change notification settings."""
    _insert(
        db,
        {
            "kind": "mail",
            "topic": topic,
            "recipient": to,
            "subject": f"[{site.name}] {subject}"[:300],
            "body": text.rstrip() + footer(site, optional=optional),
            "user_id": user_id,
            "dedupe_key": dedupe_key,
            "created_at": now,
            "next_attempt_at": now,
        },
    )


def enqueue_webhook(
    db: Session,
    *,
    webhook_id: int,
    url: str,
    event: str,
    payload: str,
    now: dt.datetime,
    dedupe_key: str | None = None,
) -> None:
    """Queue one signed delivery of ``payload`` (JSON text, sent byte for byte on retries)."""
    _insert(
        db,
        {
            "kind": "webhook",
            "topic": event,
            "recipient": url,
            "body": payload,
            "webhook_id": webhook_id,
            "dedupe_key": dedupe_key,
            "created_at": now,
            "next_attempt_at": now,
        },
    )


def _insert(db: Session, values: dict[str, Any]) -> None:
    """Insert a message; one whose ``dedupe_key`` is already queued or sent is skipped."""
    values = {"status": "queued", "attempts": 0, "last_error": "", "subject": "", **values}
    if values.get("dedupe_key") is None:
        db.execute(insert(OutboxMessage).values(**values))
        return
    dialect = db.get_bind().dialect.name
    # Two processes may find the same due digest or expiry at once: the key decides.
    statement = (postgresql if dialect == "postgresql" else sqlite).insert(OutboxMessage)
    db.execute(statement.values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"]))


def counts(db: Session) -> dict[str, int]:
    """How many messages are in each state."""
    rows = db.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status))
    found = {status: count for status, count in rows}
    return {status: found.get(status, 0) for status in ("queued", "sending", "sent", "failed")}


def list_messages(
    db: Session,
    *,
    status: str | None = None,
    kind: str | None = None,
    webhook_id: int | None = None,
    limit: int = 100,
) -> Sequence[OutboxMessage]:
    """Newest first."""
    query = select(OutboxMessage)
    if status:
        query = query.where(OutboxMessage.status == status)
    if kind:
        query = query.where(OutboxMessage.kind == kind)
    if webhook_id is not None:
        query = query.where(OutboxMessage.webhook_id == webhook_id)
    return db.scalars(query.order_by(OutboxMessage.id.desc()).limit(limit)).all()


def retry(db: Session, message: OutboxMessage, *, now: dt.datetime) -> OutboxMessage:
    """Queue a failed message again (an admin fixed the mail server or the hook)."""
    if message.status != "failed":
        raise Conflict(f"Message {message.id} is {message.status}; only failed ones are retried.")
    message.status = "queued"
    message.next_attempt_at = now
    message.lease_until = None
    db.flush()
    return message
