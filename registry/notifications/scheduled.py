"""Notifications that come from the calendar: expiries and the reviewers' daily digest.

``run_scheduled`` may run in every server process at once and as often as wanted: each
mail carries a key (``training-expiring:17``, ``review-digest:4:2026-12-01``) that the outbox
accepts once, so nobody is told the same thing twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from registry.access import fixes
from registry.context import Registry
from registry.mail.outbox import enqueue_mail
from registry.mail.site import Site
from registry.models import (
    AccessRequest,
    CredentialApplication,
    Model,
    NotificationPreference,
    Training,
    User,
    Version,
)
from registry.notifications import messages
from registry.notifications.preferences import wants
from registry.notifications.recipients import reachable
from registry.unit_of_work import unit_of_work
from registry.webhooks.events import publish_event

WARN_BEFORE = dt.timedelta(days=30)
# A lapse is announced if it happened this recently (not for every old one at first start).
LAPSE_WINDOW = dt.timedelta(days=7)


def run_scheduled(registry: Registry) -> None:
    """Queue due expiry warnings and today's digests (the background task and ``mail run``)."""
    site = Site.of(registry.settings)
    now = registry.now()
    with unit_of_work(registry.sessions) as db:
        for expiry in [*_trainings(db, now), *_grants(db, now)]:
            announce(db, site, expiry, now)
        review_digests(db, site, now)


@dataclasses.dataclass(frozen=True)
class Expiry:
    """Something of ``user``'s that ends at ``until`` (a training, an access grant)."""

    kind: str  # "training" or "grant": the mail's topic and key
    row_id: int
    user: User
    until: dt.datetime
    what: str  # "citi-dsor training", "access to mgh/cxr"
    path: str  # where to renew it
    data: dict[str, Any] | None = None  # the webhook payload, if the expiry is a webhook event


def _phase(until: dt.datetime, now: dt.datetime) -> str | None:
    """``expiring`` within 30 days, ``lapsed`` in the last week, else nothing to say."""
    if now < until <= now + WARN_BEFORE:
        return "expiring"
    if now - LAPSE_WINDOW < until <= now:
        return "lapsed"
    return None


def announce(db: Session, site: Site, expiry: Expiry, now: dt.datetime) -> None:
    """Queue the warning (and webhook event) of ``expiry`` once per phase."""
    phase = _phase(expiry.until, now)
    if phase is None:
        return
    key = f"{expiry.kind}-{phase}:{expiry.row_id}"
    user = expiry.user
    if reachable(user) and wants(db, user, "expiry"):
        letter = messages.expiring(
            site, what=expiry.what, until=expiry.until, lapsed=phase == "lapsed", path=expiry.path
        )
        enqueue_mail(
            db,
            site,
            to=user.email,
            subject=letter.subject,
            text=letter.text,
            topic=f"{expiry.kind}-{phase}",
            user_id=user.id,
            now=now,
            dedupe_key=key,
        )
    if phase == "expiring" and expiry.data is not None:
        institution = user.membership.institution_id if user.membership else None
        publish_event(
            db,
            site,
            "training.expiring",
            expiry.data,
            institution_id=institution,
            now=now,
            dedupe=key,
        )


def _trainings(db: Session, now: dt.datetime) -> list[Expiry]:
    """Accepted trainings ending soon or just now, unless a later one outlasts them."""
    accepted = db.scalars(
        select(Training).where(
            Training.status == "accepted",
            Training.valid_until > now - LAPSE_WINDOW,
            Training.valid_until <= now + WARN_BEFORE,
        )
    ).all()
    found = []
    for training in accepted:
        until = training.valid_until
        renewed = db.scalar(
            select(Training.id).where(
                Training.user_id == training.user_id,
                Training.kind == training.kind,
                Training.status == "accepted",
                Training.valid_until > until,
            )
        )
        if until is None or renewed is not None:
            continue
        user = training.user
        data = {"user": user.email, "training": training.kind, "valid_until": until.isoformat()}
        what = f"{training.kind} training"
        found.append(Expiry("training", training.id, user, until, what, fixes.TRAININGS, data))
    return found


def _grants(db: Session, now: dt.datetime) -> list[Expiry]:
    """Accepted access grants ending soon or just now, unless a later grant outlasts them."""
    grants = db.scalars(
        select(AccessRequest).where(
            AccessRequest.status == "accepted",
            AccessRequest.expires_at > now - LAPSE_WINDOW,
            AccessRequest.expires_at <= now + WARN_BEFORE,
        )
    ).all()
    found = []
    for grant in grants:
        until = grant.expires_at
        later = db.scalars(
            select(AccessRequest.expires_at).where(
                AccessRequest.user_id == grant.user_id,
                AccessRequest.model_id == grant.model_id,
                AccessRequest.status == "accepted",
                AccessRequest.id != grant.id,
            )
        ).all()
        if until is None or any(other is None or other > until for other in later):
            continue
        repo = grant.model.repo_id
        path = fixes.request_access_url(repo)
        found.append(Expiry("grant", grant.id, grant.user, until, f"access to {repo}", path))
    return found


def review_digests(db: Session, site: Site, now: dt.datetime) -> None:
    """One mail a day to each reviewer who chose the digest, if anything waits for them."""
    chosen = db.scalars(
        select(User)
        .join(NotificationPreference, NotificationPreference.user_id == User.id)
        .where(NotificationPreference.reviews == "digest")
    ).all()
    for user in chosen:
        counts = _waiting_for(db, user)
        if not reachable(user) or not any(count for count, _ in counts.values()):
            continue
        letter = messages.digest(site, {k: v for k, v in counts.items() if v[0]})
        enqueue_mail(
            db,
            site,
            to=user.email,
            subject=letter.subject,
            text=letter.text,
            topic="review-digest",
            user_id=user.id,
            now=now,
            dedupe_key=f"review-digest:{user.id}:{now:%Y-%m-%d}",
        )


def _waiting_for(db: Session, user: User) -> dict[str, tuple[int, str]]:
    """Pending items per queue that ``user`` reviews, with the queue's page."""
    counts: dict[str, tuple[int, str]] = {}
    requests = select(AccessRequest.id).where(AccessRequest.status == "pending")
    if user.is_registry_admin:
        pending_apps = select(CredentialApplication.id).where(
            CredentialApplication.status == "pending"
        )
        counts["credentialing applications"] = (_count(db, pending_apps), "/admin/credentials")
        pending_trainings = select(Training.id).where(Training.status == "pending")
        counts["training certificates"] = (_count(db, pending_trainings), "/admin/trainings")
        in_review = select(Version.id).where(Version.state == "in-review")
        counts["model versions"] = (_count(db, in_review), "/admin/reviews")
    elif user.membership is not None and user.membership.role == "institution-admin":
        requests = requests.join(Model, Model.id == AccessRequest.model_id).where(
            Model.institution_id == user.membership.institution_id
        )
    else:
        return counts
    counts["access requests"] = (_count(db, requests), "/admin/access-requests")
    return counts


def _count(db: Session, query: Select[Any]) -> int:
    return db.scalar(select(func.count()).select_from(query.subquery())) or 0
