"""Webhooks API: subscribe a URL to registry events, send a test, read the delivery log."""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify

from registry.access.seam import authorize, requires
from registry.accounts import institutions
from registry.api.bodies import parse_body
from registry.api.openapi import document
from registry.api.schemas import system as schemas
from registry.api.v1.blueprint import bp
from registry.api.v1.identity import signed_in_user
from registry.api.v1.serializers import iso
from registry.context import current_registry
from registry.mail.site import Site
from registry.models import OutboxMessage, Webhook
from registry.webhooks import services
from registry.webhooks.authorization import authorize_hook_creation
from registry.webhooks.events import EVENTS
from registry.webhooks.signing import SIGNATURE_HEADER

HOOK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "url": {"type": "string"},
        "events": {"type": "array", "items": {"enum": list(EVENTS)}},
        "institution": {"type": ["string", "null"]},
        "allow_private": {"type": "boolean"},
        "secret_prefix": {"type": "string"},
    },
}


def hook_dict(hook: Webhook) -> dict[str, Any]:
    return {
        "id": hook.id,
        "url": hook.url,
        "events": list(hook.events or []),
        "institution": hook.institution.slug if hook.institution is not None else None,
        "allow_private": hook.allow_private,
        "secret_prefix": hook.secret_prefix,
        "signature_header": SIGNATURE_HEADER,
        "created_at": iso(hook.created_at),
        "deleted_at": iso(hook.deleted_at),
    }


def delivery_dict(message: OutboxMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "event": message.topic,
        "status": message.status,
        "attempts": message.attempts,
        "response_status": message.response_status,
        "last_error": message.last_error,
        "next_attempt_at": iso(message.next_attempt_at) if message.status == "queued" else None,
        "created_at": iso(message.created_at),
        "sent_at": iso(message.sent_at),
        "payload": message.body,
    }


def _hook(hook_id: int) -> Webhook:
    hook = services.get_hook(g.db, hook_id)
    authorize(hook)
    return hook


@bp.get("/webhooks")
@requires("webhook:manage")
@document("The webhooks you manage", response={"type": "array", "items": HOOK_SCHEMA})
def list_webhooks() -> Response:
    return jsonify([hook_dict(h) for h in services.list_hooks(g.db, viewer=signed_in_user())])


@bp.post("/webhooks")
@requires("webhook:manage")
@document(
    "Subscribe a URL to events; the answer shows the signing secret once",
    body=schemas.WebhookBody,
    response=HOOK_SCHEMA,
    status=201,
)
def create_webhook() -> tuple[Response, int]:
    body = parse_body(schemas.WebhookBody)
    slug, allow_private = body.institution, body.allow_private
    institution = institutions.get_institution(g.db, slug) if slug else None
    authorize_hook_creation(institution, allow_private=allow_private)
    registry = current_registry()
    hook, secret = services.create_hook(
        g.db,
        url=body.url,
        events=body.events,
        institution=institution,
        allow_private=allow_private,
        actor=signed_in_user(),
        secret_key=registry.settings.secret_key,
        now=registry.now(),
        operator_allows_private=registry.settings.webhook_allow_private,
    )
    data = hook_dict(hook)
    data["secret"] = secret
    data["note"] = "Copy the secret now: it is shown only once. Deliveries are signed with it."
    return jsonify(data), 201


@bp.get("/webhooks/<int:hook_id>")
@requires("webhook:manage", deferred=True)
@document("One webhook", response=HOOK_SCHEMA)
def get_webhook(hook_id: int) -> Response:
    return jsonify(hook_dict(_hook(hook_id)))


@bp.delete("/webhooks/<int:hook_id>")
@requires("webhook:manage", deferred=True)
@document("Delete a webhook (its delivery log stays)", response=HOOK_SCHEMA)
def delete_webhook(hook_id: int) -> Response:
    hook = services.delete_hook(
        g.db, _hook(hook_id), actor=signed_in_user(), now=current_registry().now()
    )
    return jsonify({**hook_dict(hook), "deleted": True})


@bp.post("/webhooks/<int:hook_id>/test")
@requires("webhook:manage", deferred=True)
@document("Queue a signed ping delivery to the hook", response=schemas.PingQueued, status=202)
def test_webhook(hook_id: int) -> tuple[Response, int]:
    hook = _hook(hook_id)
    registry = current_registry()
    services.send_test(
        g.db, hook, Site.of(registry.settings), actor=signed_in_user(), now=registry.now()
    )
    return jsonify({"queued": True, "deliveries": f"/api/v1/webhooks/{hook.id}/deliveries"}), 202


@bp.get("/webhooks/<int:hook_id>/deliveries")
@requires("webhook:manage", deferred=True)
@document("The hook's delivery log, newest first", response={"type": "array"})
def webhook_deliveries(hook_id: int) -> Response:
    hook = _hook(hook_id)
    return jsonify([delivery_dict(m) for m in services.deliveries(g.db, hook)])
