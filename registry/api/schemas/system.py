"""Answers of the health, outbox and webhook routes."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from registry.api.schemas import Answer, Body
from registry.webhooks.events import EVENTS


class Health(Answer):
    status: str
    failing: list[str]
    backends: dict[str, dict[str, Any]]


class Pong(Answer):
    pong: bool


class OutboxMessage(Answer):
    id: int
    kind: str
    topic: str | None
    recipient: str
    subject: str | None
    status: str
    attempts: int
    last_error: str | None
    response_status: int | None
    created_at: str | None
    next_attempt_at: str | None
    sent_at: str | None


class Outbox(Answer):
    counts: dict[str, int]
    messages: list[OutboxMessage]


class PingQueued(Answer):
    queued: bool
    deliveries: str


class WebhookBody(Body):
    """A new webhook; the service checks the URL and the event names and says what to fix."""

    url: str = ""
    events: list[str] = Field(default_factory=list, json_schema_extra={"items": {"enum": EVENTS}})
    institution: str | None = None  # an institution's slug; left out: every event
    allow_private: bool = False
