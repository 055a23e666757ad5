"""One decision (and one reason) for many queue items at once, all or nothing.

Each item goes through the same service as a decision on its own, so the rules, audit
events and notifications are the same. The first item that cannot take the decision stops
the batch with a message naming it; the caller's unit of work then rolls the rest back.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.orm import Session

from registry.access.engine import PolicyEngine
from registry.access_requests import services as access_request_services
from registry.credentials import applications, trainings
from registry.errors import BadRequest, NotFound, RegistryError
from registry.models import User, Version
from registry.publishing import review

MAX_BATCH = 200
QUEUES = ("credentials", "trainings", "access-requests", "reviews")
DECISIONS = ("accept", "reject")


@dataclasses.dataclass(frozen=True)
class Batch:
    """What a reviewer decided for which items."""

    queue: str
    ids: list[int]
    decision: str
    reason: str = ""
    expires_at: str | None = None


def parse_ids(raw: Sequence[Any]) -> list[int]:
    """Item ids from a form or a JSON list: whole numbers, each once, at most 200."""
    ids: list[int] = []
    for value in raw:
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise BadRequest(f"ids must be whole numbers; {str(value)[:40]!r} is not.") from None
        if number not in ids:
            ids.append(number)
    if not ids:
        raise BadRequest("Select at least one item to decide.")
    if len(ids) > MAX_BATCH:
        raise BadRequest(f"Decide at most {MAX_BATCH} items at once.")
    return ids


def batch(
    queue: str, ids: Sequence[Any], decision: Any, reason: Any = "", expires_at: Any = None
) -> Batch:
    """A checked batch: a known queue, accept or reject, and the ids."""
    if queue not in QUEUES:
        raise BadRequest(f"queue must be one of {', '.join(QUEUES)}.")
    if decision not in DECISIONS:
        raise BadRequest("decision must be accept or reject.")
    if not isinstance(reason, str):
        raise BadRequest("reason must be text.")
    until = expires_at if isinstance(expires_at, str) and expires_at else None
    return Batch(queue, parse_ids(ids), decision, reason, until)


def load(db: Session, queue: str, item_id: int) -> Any:
    """The queue's item with this id (404 naming it when there is none)."""
    if queue == "credentials":
        return applications.get_application(db, item_id)
    if queue == "trainings":
        return trainings.get_training(db, item_id)
    if queue == "reviews":
        version = db.get(Version, item_id) if 0 < item_id < 2**31 else None
        if version is None:
            raise NotFound(f"No version #{item_id}.")
        return version
    return access_request_services.get_request(db, item_id)


def status_of(item: Any) -> str:
    """An item's status after the decision (a version's is its state)."""
    return item.state if isinstance(item, Version) else item.status


def describe(queue: str, item: Any) -> str:
    """How a message names an item: whose it is and, for a request, for which model."""
    if queue == "access-requests":
        return f"the request of {item.user.email} for {item.model.repo_id}"
    if queue == "trainings":
        return f"the training of {item.user.email}"
    if queue == "reviews":
        return f"{item.model.repo_id} version #{item.id}"
    return f"the application of {item.user.email}"


def decide_batch(
    db: Session,
    request: Batch,
    *,
    policy: PolicyEngine,
    actor: User,
    now: dt.datetime,
    check: Callable[[Any], Any] = lambda item: None,
    signer: Callable[[], Any] | None = None,
) -> list[Any]:
    """Apply one decision to every item (``check`` authorizes each); stop at the first
    that cannot take it, with a message that names the item."""
    items = [load(db, request.queue, item_id) for item_id in request.ids]
    for item in items:
        check(item)
    for item in items:
        try:
            _decide_one(db, request, item, policy=policy, actor=actor, now=now, signer=signer)
        except RegistryError as error:
            named = request.queue != "reviews" and item.user.email in error.message
            where = "" if named else f" ({describe(request.queue, item)})"
            error.message = f"Nothing was decided{where}. {error.message}"
            raise
    return items


def _decide_one(
    db: Session,
    request: Batch,
    item: Any,
    *,
    policy: PolicyEngine,
    actor: User,
    now: dt.datetime,
    signer: Callable[[], Any] | None,
) -> None:
    if request.queue == "reviews":
        if request.decision == "reject":
            review.reject_version(db, item, request.reason, actor=actor, now=now)
        elif signer is None:
            raise BadRequest("Publishing needs the registry's signing key.")
        else:
            review.publish_reviewed(db, item, signer=signer, actor=actor, now=now)
    elif request.queue == "credentials":
        applications.decide(
            db, item, decision=request.decision, reason=request.reason, actor=actor, now=now
        )
    elif request.queue == "trainings":
        trainings.review(
            db,
            item,
            policy.training(item.kind),
            decision=request.decision,
            reason=request.reason,
            actor=actor,
            now=now,
        )
    else:
        access_request_services.decide(
            db,
            item,
            decision=request.decision,
            reason=request.reason,
            expires_at=request.expires_at,
            actor=actor,
            now=now,
        )
