"""Registry-admin review of submitted versions: list, publish or reject with a reason."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from client.shared import rules
from registry.audit.services import record_event
from registry.errors import BadRequest, Conflict, RevisionNotFound
from registry.models import Model, User, Version
from registry.publishing.locks import serialize_writes
from registry.publishing.publish import publish_version
from registry.publishing.signing import ManifestSigner
from registry.repos import services as repos


def review_required(policy: Any, tier: str, institution: str | None = None) -> bool:
    """The policy decides (per tier, and per institution where it says so); without a
    rule every tier is reviewed."""
    rule = getattr(policy, "review_required", None)
    return bool(rule(tier, institution)) if callable(rule) else True


def pending_reviews(db: Session) -> list[Version]:
    """Versions waiting for review, oldest submission first."""
    return list(
        db.scalars(
            select(Version)
            .where(Version.state == "in-review")
            .order_by(Version.submitted_at, Version.id)
        )
    )


def find_version(db: Session, model: Model, ref: str) -> Version:
    """A version by registry id (any state) or by commit, tag or ``main`` (visible ones)."""
    if ref.isascii() and ref.isdigit():
        version_id = rules.parse_id(ref)
        version = db.get(Version, version_id) if version_id is not None else None
        if version is None or version.model_id != model.id:
            raise RevisionNotFound(f"{model.repo_id} has no version {ref}.")
        return version
    return repos.resolve_revision(db, model, ref)


def publish_reviewed(
    db: Session,
    version: Version,
    *,
    signer: Callable[[], ManifestSigner],
    actor: User | None,
    now: dt.datetime,
) -> Version:
    """Publish an in-review version in one transaction (one reviewer wins a race)."""
    _require_other_reviewer(version, actor, "publish")
    serialize_writes(db)  # the lock publish_version takes, first: one lock order everywhere
    _claim(db, version, "published", actor, "publish")
    publish_version(db, version, actor=actor, now=now, signer=signer())
    return version


def reject_version(
    db: Session,
    version: Version,
    reason: str,
    *,
    actor: User | None,
    now: dt.datetime,
) -> Version:
    """Refuse an in-review version; the publisher sees the reason."""
    _require_in_review(version, "reject")
    _require_other_reviewer(version, actor, "reject")
    if not reason.strip():
        raise BadRequest("Give a 'reason' for the rejection; the publisher will see it.")
    _claim(db, version, "rejected", actor, "reject")
    version.reject_reason = reason.strip()
    record_event(
        db,
        "version:reject",
        actor=actor,
        target=f"{version.model.repo_id} version {version.id}",
        model_id=version.model_id,
        version_id=version.id,
        details={"reason": version.reject_reason},
        now=now,
    )
    db.flush()
    return version


def _claim(db: Session, version: Version, state: str, actor: User | None, verb: str) -> None:
    """Compare-and-set ``in-review`` → ``state``: a second reviewer's decision finds none."""
    claimed = db.execute(
        update(Version)
        .where(Version.id == version.id, Version.state == "in-review")
        .values(state=state, reviewed_by_id=actor.id if actor is not None else None)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.refresh(version)
    if claimed != 1:
        raise Conflict(
            f"{version.model.repo_id} version {version.id} is {version.state}: another "
            f"reviewer decided first, so it cannot be {verb}ed now."
        )


def _require_other_reviewer(version: Version, actor: User | None, verb: str) -> None:
    if actor is not None and version.created_by_id == actor.id:
        raise Conflict(
            f"You uploaded {version.model.repo_id} version {version.id}; another registry "
            f"admin must {verb} it (nobody reviews their own upload)."
        )


def _require_in_review(version: Version, verb: str) -> None:
    if version.state != "in-review":
        raise Conflict(
            f"{version.model.repo_id} version {version.id} is {version.state}; only versions "
            f"in review can be {verb}ed."
        )
