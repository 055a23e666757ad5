"""Answers of the health, outbox and webhook routes."""

from __future__ import annotations

from typing import Any

from registry.api.schemas import Answer


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
