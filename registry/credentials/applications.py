"""Credentialing applications (identity, affiliation, reference, research summary)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry.access.requirements import require_verified_email
from registry.accounts.validation import MAX_ID, Problems
from registry.audit.services import record_event
from registry.errors import Conflict, NotFound
from registry.models import CredentialApplication, User

DECISIONS = {"accept": "accepted", "reject": "rejected", "revoke": "revoked"}


def apply(
    db: Session,
    user: User,
    fields: dict[str, Any],
    *,
    now: dt.datetime,
) -> CredentialApplication:
    """Submit an application; one may be pending at a time."""
    problems = Problems()
    values = {
        "full_name": problems.text("full_name", fields.get("full_name"), max_length=200),
        "affiliation": problems.text("affiliation", fields.get("affiliation"), max_length=300),
        "job_title": problems.text(
            "job_title", fields.get("job_title"), max_length=200, required=False
        ),
        "reference_name": problems.text(
            "reference_name", fields.get("reference_name"), max_length=200
        ),
        "reference_email": problems.email("reference_email", fields.get("reference_email")),
        "research_summary": problems.text(
            "research_summary", fields.get("research_summary"), max_length=5000
        ),
    }
    if values["reference_email"] and values["reference_email"] == user.email.lower():
        problems.add("reference_email", "must be someone else's address")
    problems.raise_if_any("Cannot submit the application")
    statuses = set(
        db.scalars(
            select(CredentialApplication.status).where(CredentialApplication.user_id == user.id)
        )
    )
    if "accepted" in statuses:
        raise Conflict("You are already credentialed.")
    if "pending" in statuses:
        raise Conflict("You already have an application awaiting review.")
    application = CredentialApplication(user_id=user.id, created_at=now, **values)
    try:
        with db.begin_nested():
            db.add(application)
    except IntegrityError:  # another application was filed at the same moment
        raise Conflict("You already have an application awaiting review.") from None
    record_event(
        db,
        "credential:apply",
        actor=user,
        target=f"credential-application:{application.id}",
        details={"affiliation": values["affiliation"]},
        now=now,
    )
    db.flush()
    return application


def get_application(db: Session, application_id: int) -> CredentialApplication:
    application = (
        db.get(CredentialApplication, application_id) if application_id <= MAX_ID else None
    )
    if application is None:
        raise NotFound(f"No credential application {application_id}.")
    return application


def list_applications(
    db: Session, *, user: User | None = None, status: str | None = None
) -> Sequence[CredentialApplication]:
    query = select(CredentialApplication).order_by(CredentialApplication.id.desc())
    if user is not None:
        query = query.where(CredentialApplication.user_id == user.id)
    if status:
        query = query.where(CredentialApplication.status == status)
    return db.scalars(query).all()


def decide(
    db: Session,
    application: CredentialApplication,
    *,
    decision: str,
    reason: str = "",
    actor: User,
    now: dt.datetime,
) -> CredentialApplication:
    """Accept or reject a pending application, or revoke an accepted one."""
    problems = Problems()
    if not isinstance(decision, str) or decision not in DECISIONS:
        problems.add("decision", f"must be one of {', '.join(DECISIONS)}")
    reason = problems.text("reason", reason, max_length=2000, required=decision != "accept")
    problems.raise_if_any("Cannot record the decision")
    if application.user_id == actor.id:
        raise Conflict("You cannot decide on your own application; ask another admin.")
    expected = "accepted" if decision == "revoke" else "pending"
    if application.status != expected:
        raise Conflict(
            f"Application {application.id} is {application.status}; only a {expected} "
            f"application can be {DECISIONS[decision]}."
        )
    if decision == "accept":
        require_verified_email(
            db, application.user, f"The application of {application.user.email} cannot be accepted"
        )
    changed = db.execute(
        update(CredentialApplication)
        .where(CredentialApplication.id == application.id, CredentialApplication.status == expected)
        .values(status=DECISIONS[decision])
        .execution_options(synchronize_session=False)
    ).rowcount
    db.refresh(application)
    if changed != 1:
        raise Conflict(f"Application {application.id} was {application.status} meanwhile.")
    application.reason = reason
    application.decided_by_id = actor.id
    application.decided_at = now
    record_event(
        db,
        f"credential:{decision}",
        actor=actor,
        target=f"user:{application.user.email}",
        details={"application_id": application.id, "reason": reason},
        now=now,
    )
    db.flush()
    return application
