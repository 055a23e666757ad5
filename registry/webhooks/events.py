"""Webhook events and their fan-out: one queued delivery per subscribed, matching hook."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from registry.mail.outbox import enqueue_webhook
from registry.mail.site import Site
from registry.models import Webhook

EVENTS = (
    "access-request.created",
    "access-request.decided",
    "version.published",
    "version.withdrawn",
    "credential.decided",
    "training.expiring",
)
PING = "ping"  # what "send test" delivers; every hook receives it


def payload(site: Site, event: str, data: dict[str, Any], now: dt.datetime) -> str:
    """The JSON body of a delivery (signed byte for byte; no secrets in it)."""
    document = {
        "id": uuid.uuid4().hex,
        "event": event,
        "created_at": now.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "registry": {"name": site.name, "url": site.url},
        "data": data,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def publish_event(
    db: Session,
    site: Site,
    event: str,
    data: dict[str, Any],
    *,
    institution_id: int | None,
    now: dt.datetime,
    dedupe: str | None = None,
) -> int:
    """Queue ``event`` for registry-wide hooks and those of ``institution_id``; how many."""
    query = select(Webhook).where(Webhook.deleted_at.is_(None))
    if institution_id is None:
        query = query.where(Webhook.institution_id.is_(None))
    else:
        query = query.where(
            or_(Webhook.institution_id.is_(None), Webhook.institution_id == institution_id)
        )
    queued = 0
    for hook in db.scalars(query.order_by(Webhook.id)):
        if event not in (hook.events or []):
            continue
        enqueue_webhook(
            db,
            webhook_id=hook.id,
            url=hook.url,
            event=event,
            payload=payload(site, event, data, now),
            now=now,
            dedupe_key=f"{dedupe}:hook:{hook.id}" if dedupe else None,
        )
        queued += 1
    return queued
