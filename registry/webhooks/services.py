"""Managing hooks: create (the secret is shown once), list, delete, send a test, read the log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.accounts.validation import MAX_ID, Problems
from registry.audit.services import record_event
from registry.errors import Conflict, NotFound
from registry.mail.outbox import enqueue_webhook, list_messages
from registry.mail.site import Site
from registry.models import Institution, OutboxMessage, User, Webhook
from registry.webhooks.events import EVENTS, PING, payload
from registry.webhooks.signing import new_secret, seal
from registry.webhooks.targets import TargetRefused, resolve


def create_hook(
    db: Session,
    *,
    url: Any,
    events: Any,
    institution: Institution | None,
    allow_private: bool,
    actor: User,
    secret_key: str,
    now: dt.datetime,
    operator_allows_private: bool = False,
) -> tuple[Webhook, str]:
    """A new hook and its secret (returned once; only an encrypted copy is kept).

    ``allow_private`` is the hook's own exception (the view lets only registry admins set
    it); ``operator_allows_private`` is ``REGISTRY_WEBHOOK_ALLOW_PRIVATE``."""
    problems = Problems()
    try:
        # Checked for internal addresses now, and again before every delivery.
        resolve(url, allow_private=allow_private or operator_allows_private)
    except TargetRefused as refused:
        problems.add("url", str(refused))
    chosen: list[str] = []
    if not isinstance(events, list) or not events:
        problems.add("events", f"choose one or more of {', '.join(EVENTS)}")
    else:
        for event in events:
            if event not in EVENTS:
                problems.add("events", f"unknown event {event!r}; use {', '.join(EVENTS)}")
            elif event not in chosen:
                chosen.append(event)
    problems.raise_if_any("Cannot create the webhook")
    secret = new_secret()
    hook = Webhook(
        institution_id=institution.id if institution is not None else None,
        url=url.strip(),
        events=chosen,
        secret_encrypted=seal(secret, secret_key),
        secret_prefix=secret[:10],
        allow_private=allow_private,
        created_by_id=actor.id,
        created_at=now,
    )
    db.add(hook)
    db.flush()
    record_event(
        db,
        "webhook:create",
        actor=actor,
        target=f"webhook:{hook.id}",
        details={
            "url": hook.url,
            "events": chosen,
            "institution": institution.slug if institution is not None else None,
            "allow_private": allow_private,
        },
        now=now,
    )
    return hook, secret


def get_hook(db: Session, hook_id: int) -> Webhook:
    """A hook by id, deleted ones too (their delivery log stays readable)."""
    hook = db.get(Webhook, hook_id) if hook_id <= MAX_ID else None
    if hook is None:
        raise NotFound(f"No webhook {hook_id}.")
    return hook


def _require_live(hook: Webhook) -> None:
    if hook.deleted_at is not None:
        raise Conflict(f"Webhook {hook.id} was deleted on {hook.deleted_at:%Y-%m-%d %H:%M} UTC.")


def list_hooks(db: Session, *, viewer: User) -> Sequence[Webhook]:
    """The hooks ``viewer`` manages: all for registry admins, else their institution's."""
    query = select(Webhook).where(Webhook.deleted_at.is_(None))
    if not viewer.is_registry_admin:
        membership = viewer.membership
        query = query.where(
            Webhook.institution_id == (membership.institution_id if membership else -1)
        )
    return db.scalars(query.order_by(Webhook.id)).all()


def delete_hook(db: Session, hook: Webhook, *, actor: User, now: dt.datetime) -> Webhook:
    """No delivery is attempted after this; the delivery log stays."""
    _require_live(hook)
    hook.deleted_at = now
    record_event(
        db,
        "webhook:delete",
        actor=actor,
        target=f"webhook:{hook.id}",
        details={"url": hook.url},
        now=now,
    )
    db.flush()
    return hook


def send_test(db: Session, hook: Webhook, site: Site, *, actor: User, now: dt.datetime) -> None:
    """Queue a signed ``ping`` delivery; it shows in the log within seconds."""
    _require_live(hook)
    data = {"hook": hook.id, "requested_by": actor.email, "events": list(hook.events or [])}
    enqueue_webhook(
        db,
        webhook_id=hook.id,
        url=hook.url,
        event=PING,
        payload=payload(site, PING, data, now),
        now=now,
    )
    db.flush()


def deliveries(db: Session, hook: Webhook, *, limit: int = 50) -> Sequence[OutboxMessage]:
    """The hook's delivery log, newest first."""
    return list_messages(db, webhook_id=hook.id, limit=limit)
