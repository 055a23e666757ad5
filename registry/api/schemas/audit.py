"""Answers of the audit log routes."""

from __future__ import annotations

from typing import Any, Literal

from registry.api.schemas import Answer


class Checkpoint(Answer):
    size: int
    root: str
    time: str | None
    key_id: str
    body: str
    signature: str
    algorithm: Literal["ed25519"]


class Event(Answer):
    id: int
    seq: int | None
    time: str | None
    action: str


class Events(Answer):
    events: list[Event]
    next_after: int | None


class VerifyProblem(Answer):
    seq: int | None
    event_id: int | None
    problem: str
    text: str


class VerifyReport(Answer):
    ok: bool
    sealed: int
    pending: int
    checkpoints: int
    first_mismatch: str | None
    problems: list[VerifyProblem]


class Checkpoints(Answer):
    checkpoints: list[Checkpoint]
    next_after: int | None


class Consistency(Answer):
    old_size: int
    new_size: int
    proof: list[str]
    checkpoint: Checkpoint


class Receipt(Answer):
    event: Event
    leaf: str
    leaf_hash: str
    index: int
    tree_size: int
    path: list[str]
    checkpoint: Checkpoint


class Downloads(Answer):
    model: str
    version: str | None
    state: str
    downloaders: list[dict[str, Any]]
