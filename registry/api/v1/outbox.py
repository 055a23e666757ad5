"""The outbox for registry admins: what is queued, sent and failed (mail bodies stay hidden:
a verification or reset mail carries a link that would open the account)."""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify, request

from registry.access.seam import requires
from registry.api.openapi import document
from registry.api.params import int_arg
from registry.api.schemas import system as schemas
from registry.api.v1.blueprint import bp
from registry.api.v1.serializers import iso
from registry.context import current_registry
from registry.errors import BadRequest, NotFound
from registry.mail import outbox
from registry.models import OutboxMessage
from registry.models.mail import OUTBOX_KINDS, OUTBOX_STATES


def message_dict(message: OutboxMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "kind": message.kind,
        "topic": message.topic,
        "recipient": message.recipient,
        "subject": message.subject,
        "status": message.status,
        "attempts": message.attempts,
        "last_error": message.last_error,
        "response_status": message.response_status,
        "created_at": iso(message.created_at),
        "next_attempt_at": iso(message.next_attempt_at) if message.status == "queued" else None,
        "sent_at": iso(message.sent_at),
    }


def _choice(name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.args.get(name) or None
    if value is not None and value not in allowed:
        raise BadRequest(f"{name} must be one of {', '.join(allowed)}")
    return value


@bp.get("/outbox")
@requires("admin:manage")
@document(
    "Outgoing mail and webhook deliveries: counts per state and the newest messages",
    response=schemas.Outbox,
    query={"status": {"enum": list(OUTBOX_STATES)}, "kind": {"enum": list(OUTBOX_KINDS)}},
)
def list_outbox() -> Response:
    messages = outbox.list_messages(
        g.db,
        status=_choice("status", OUTBOX_STATES),
        kind=_choice("kind", OUTBOX_KINDS),
        limit=int_arg("limit", 100, minimum=1, maximum=1000),
    )
    return jsonify({"counts": outbox.counts(g.db), "messages": [message_dict(m) for m in messages]})


@bp.post("/outbox/<int:message_id>/retry")
@requires("admin:manage")
@document("Queue a failed message again", response=schemas.OutboxMessage)
def retry_message(message_id: int) -> Response:
    message = g.db.get(OutboxMessage, message_id) if message_id <= 2**31 - 1 else None
    if message is None:
        raise NotFound(f"No outbox message {message_id}.")
    outbox.retry(g.db, message, now=current_registry().now())
    return jsonify(message_dict(message))
