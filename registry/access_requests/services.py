"""Requesting access to a contributor-review model, and the reviewers' decisions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from registry.access.policy import TierSpec
from registry.access.requirements import require_verified_email
from registry.access_requests.fields import clean_answers
from registry.accounts.validation import MAX_ID, Problems
from registry.audit.services import record_event
from registry.errors import BadRequest, Conflict, NotFound
from registry.models import AccessRequest, Model, User

STATUSES = ("pending", "accepted", "rejected", "revoked")


def is_active_grant(request: AccessRequest, now: dt.datetime) -> bool:
    return request.status == "accepted" and (request.expires_at is None or request.expires_at > now)


def create(
    db: Session,
    user: User,
    model: Model,
    tier: TierSpec | None,
    answers: Any,
    *,
    now: dt.datetime,
) -> AccessRequest:
    """File a request; a rejected, revoked or expired requester may apply again."""
    if tier is None or "access-request-accepted" not in tier.requires:
        raise BadRequest(
            f"{model.repo_id} is in the '{model.tier}' tier, which needs no access request."
        )
    fields = clean_answers(model.access_fields or [], answers if answers is not None else {})
    for earlier in db.scalars(
        select(AccessRequest).where(
            AccessRequest.user_id == user.id, AccessRequest.model_id == model.id
        )
    ):
        if earlier.status == "pending":
            raise Conflict(
                f"Your request for {model.repo_id} from {earlier.created_at:%Y-%m-%d} is still "
                "awaiting review."
            )
        if is_active_grant(earlier, now):
            until = f" until {earlier.expires_at:%Y-%m-%d}" if earlier.expires_at else ""
            raise Conflict(f"You already have access to {model.repo_id}{until}.")
    request = AccessRequest(model_id=model.id, user_id=user.id, fields=fields, created_at=now)
    try:
        with db.begin_nested():
            db.add(request)
    except IntegrityError:  # a request sent at the same moment is already pending
        raise Conflict(
            f"Your request for {model.repo_id} is already awaiting review (sent twice?)."
        ) from None
    _record(db, "access-request:create", request, user, {}, now)
    db.flush()
    return request


def get_request(db: Session, request_id: int) -> AccessRequest:
    request = db.get(AccessRequest, request_id) if request_id <= MAX_ID else None
    if request is None:
        raise NotFound(f"No access request {request_id}.")
    return request


def parse_until(value: Any, now: dt.datetime) -> dt.datetime | None:
    """``expires_at`` from an ISO date (access ends as that day starts, UTC) or datetime."""
    if value in (None, ""):
        return None
    problems = Problems()
    try:
        text = str(value)
        if len(text) == 10:
            until = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.UTC)
        else:
            until = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            if until.tzinfo is None:
                until = until.replace(tzinfo=dt.UTC)
    except ValueError:
        problems.add("expires_at", "must be an ISO date or date-time, e.g. 2026-12-31")
        problems.raise_if_any("Cannot accept the request")
        return None
    if until <= now:
        problems.add("expires_at", "must be in the future")
        problems.raise_if_any("Cannot accept the request")
    return until


def decide(
    db: Session,
    request: AccessRequest,
    *,
    decision: str,
    reason: str = "",
    expires_at: Any = None,
    actor: User,
    now: dt.datetime,
) -> AccessRequest:
    """Accept (optionally until a date) or reject (with a reason) a pending request."""
    problems = Problems()
    if not isinstance(decision, str) or decision not in ("accept", "reject"):
        problems.add("decision", "must be accept or reject")
    reason = problems.text("reason", reason, max_length=2000, required=decision == "reject")
    problems.raise_if_any("Cannot record the decision")
    if request.user_id == actor.id:
        raise Conflict("You cannot decide on your own access request.")
    if request.status != "pending":
        raise Conflict(f"Access request {request.id} was already {request.status}.")
    if decision == "accept":
        refused = f"The access request of {request.user.email} cannot be accepted"
        require_verified_email(db, request.user, refused)
    until = parse_until(expires_at, now) if decision == "accept" else None
    _transition(db, request, "pending", "accepted" if decision == "accept" else "rejected")
    request.reason = reason
    request.expires_at = until
    request.decided_by_id = actor.id
    request.decided_at = now
    details = {"reason": reason, "expires_at": until.isoformat() if until else None}
    _record(db, f"access-request:{decision}", request, actor, details, now)
    db.flush()
    return request


def revoke(
    db: Session,
    request: AccessRequest,
    *,
    reason: str,
    actor: User,
    now: dt.datetime,
) -> AccessRequest:
    """Revoke an accepted grant at once, with a reason the user will see."""
    problems = Problems()
    reason = problems.text("reason", reason, max_length=2000)
    problems.raise_if_any("Cannot revoke the grant")
    if request.status != "accepted":
        raise Conflict(f"Access request {request.id} is {request.status}, not an accepted grant.")
    _transition(db, request, "accepted", "revoked")
    request.reason = reason
    request.revoked_at = now
    request.revoked_by_id = actor.id
    _record(db, "access-request:revoke", request, actor, {"reason": reason}, now)
    db.flush()
    return request


def _transition(db: Session, request: AccessRequest, old: str, new: str) -> None:
    """Compare-and-set ``old`` → ``new``: of two decisions sent at once, one wins."""
    changed = db.execute(
        update(AccessRequest)
        .where(AccessRequest.id == request.id, AccessRequest.status == old)
        .values(status=new)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.refresh(request)
    if changed != 1:
        raise Conflict(f"Access request {request.id} was {request.status} meanwhile.")


def list_requests(
    db: Session,
    *,
    reviewer: User | None = None,
    requester: User | None = None,
    model: Model | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Sequence[AccessRequest]:
    """Requests, newest first. A ``reviewer`` who is not a registry admin sees only the
    requests for their own institution's models."""
    query = select(AccessRequest).join(Model, Model.id == AccessRequest.model_id)
    if reviewer is not None and not reviewer.is_registry_admin:
        membership = reviewer.membership
        institution_id = membership.institution_id if membership is not None else -1
        query = query.where(Model.institution_id == institution_id)
    if requester is not None:
        query = query.where(AccessRequest.user_id == requester.id)
    if model is not None:
        query = query.where(AccessRequest.model_id == model.id)
    if status:
        if status not in STATUSES:
            raise BadRequest(f"status must be one of {', '.join(STATUSES)}")
        query = query.where(AccessRequest.status == status)
    query = query.options(selectinload(AccessRequest.model), selectinload(AccessRequest.user))
    return db.scalars(query.order_by(AccessRequest.id.desc()).limit(limit).offset(offset)).all()


def _record(
    db: Session,
    tag: str,
    request: AccessRequest,
    actor: User,
    details: dict[str, Any],
    now: dt.datetime,
) -> None:
    record_event(
        db,
        tag,
        actor=actor,
        target=f"{request.model.repo_id}/user:{request.user.email}",
        model_id=request.model_id,
        details={"request_id": request.id, **details},
        now=now,
    )
