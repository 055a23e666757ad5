"""Answers of the access-request routes."""

from __future__ import annotations

from typing import Any

from registry.api.schemas import Answer, Body
from registry.api.schemas.common import Missing


class AccessForm(Answer):
    model: str
    tier: str
    requires_request: bool
    fields: list[dict[str, Any]]


class AccessRequest(Answer):
    id: int
    model: str
    user: str
    user_display_name: str
    fields: dict[str, Any] | None
    status: str
    reason: str | None
    created_at: str | None
    decided_at: str | None
    expires_at: str | None
    revoked_at: str | None
    active: bool


class NewAccessRequest(AccessRequest):
    still_missing: list[Missing]


class DecisionBody(Body):
    decision: str = ""  # accept or reject; the service names the choices
    reason: str = ""
    expires_at: str | None = None


class ReasonBody(Body):
    reason: str = ""


class NewRequestBody(Body):
    """The answers to the model's access form, by field name (the service checks them)."""

    fields: dict[str, Any] = {}
