"""Notifications follow the audit log: every state change already records an event in the
transaction that makes it, so the events a transaction recorded decide, just before it
commits, which mails and webhook deliveries to queue with it. A rolled-back change notifies
nobody; a committed one cannot be forgotten; no service has to remember to notify.

``install(sessions, settings)`` (called by ``registry.context.build_registry``) hooks this
into every session of the registry.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from registry.access import fixes
from registry.audit.queries import downloaders
from registry.config import Settings
from registry.mail.outbox import enqueue_mail
from registry.mail.site import Site
from registry.models import (
    AccessRequest,
    AuditEvent,
    CredentialApplication,
    Training,
    User,
    Version,
)
from registry.notifications import messages
from registry.notifications.messages import Letter
from registry.notifications.preferences import wants
from registry.notifications.recipients import reachable, registry_admins, request_reviewers
from registry.webhooks.events import publish_event

log = logging.getLogger(__name__)
PENDING = "registry.notifications.pending"
OUTCOMES = {"accept": "accepted", "reject": "rejected", "revoke": "revoked"}


@dataclasses.dataclass
class Dispatch:
    """One recorded event, and the means to tell people about it."""

    db: Session
    site: Site
    event: AuditEvent

    @property
    def now(self) -> dt.datetime:
        return self.event.created_at

    @property
    def action(self) -> str:
        return self.event.tag.partition(":")[2]

    def detail(self, name: str) -> Any:
        return (self.event.details or {}).get(name)

    def tell(self, user: User | None, letter: Letter, *, topic: str, category: str) -> None:
        """Mail ``user`` unless they cannot be reached or chose not to get ``category``."""
        if user is None or not reachable(user) or not wants(self.db, user, category):
            return
        enqueue_mail(
            self.db,
            self.site,
            to=user.email,
            subject=letter.subject,
            text=letter.text,
            topic=topic,
            user_id=user.id,
            now=self.now,
        )

    def tell_reviewers(self, reviewers: list[User], letter: Letter, *, topic: str) -> None:
        """Mail each reviewer who wants every item (not the one who caused it)."""
        for user in reviewers:
            if user.id != self.event.actor_id:
                self.tell(user, letter, topic=topic, category="reviews")

    def hook(self, name: str, data: dict[str, Any], *, institution_id: int | None) -> None:
        publish_event(self.db, self.site, name, data, institution_id=institution_id, now=self.now)


def _institution_of(user: User) -> int | None:
    return user.membership.institution_id if user.membership is not None else None


def _credential_decided(d: Dispatch) -> None:
    application = d.db.get(CredentialApplication, d.detail("application_id"))
    if application is None:
        return
    outcome = OUTCOMES[d.action]
    letter = messages.decision(
        d.site,
        what="credentialing application",
        outcome=outcome,
        reason=application.reason,
        path=fixes.CREDENTIALS,
    )
    d.tell(application.user, letter, topic="credential-decided", category="decisions")
    data = {"application": application.id, "user": application.user.email, "decision": outcome}
    d.hook("credential.decided", data, institution_id=_institution_of(application.user))


def _training_decided(d: Dispatch) -> None:
    training = d.db.get(Training, d.detail("training_id"))
    if training is None:
        return
    letter = messages.decision(
        d.site,
        what=f"{training.kind} training certificate",
        outcome=OUTCOMES[d.action],
        reason=training.reason,
        path=fixes.TRAININGS,
    )
    d.tell(training.user, letter, topic="training-decided", category="decisions")


def _request_data(request: AccessRequest) -> dict[str, Any]:
    return {
        "id": request.id,
        "repo": request.model.repo_id,
        "user": request.user.email,
        "status": request.status,
        "reason": request.reason,
        "expires_at": request.expires_at.isoformat() if request.expires_at else None,
        "fields": request.fields,
    }


def _request_created(d: Dispatch) -> None:
    request = d.db.get(AccessRequest, d.detail("request_id"))
    if request is None:
        return
    repo = request.model.repo_id
    letter = messages.waiting(
        d.site,
        what=f"access request for {repo}",
        who=request.user.email,
        path="/admin/access-requests",
    )
    reviewers = request_reviewers(d.db, request.model.institution_id)
    d.tell_reviewers(reviewers, letter, topic="review-waiting")
    d.hook(
        "access-request.created",
        _request_data(request),
        institution_id=request.model.institution_id,
    )


def _request_decided(d: Dispatch) -> None:
    request = d.db.get(AccessRequest, d.detail("request_id"))
    if request is None:
        return
    repo = request.model.repo_id
    letter = messages.decision(
        d.site,
        what=f"access request for {repo}",
        outcome=OUTCOMES[d.action],
        reason=request.reason,
        path=f"/models/{repo}",
    )
    d.tell(request.user, letter, topic="access-request-decided", category="decisions")
    d.hook(
        "access-request.decided",
        _request_data(request),
        institution_id=request.model.institution_id,
    )


def _waiting_for_admins(what: str, path: str) -> Callable[[Dispatch], None]:
    def handle(d: Dispatch) -> None:
        letter = messages.waiting(d.site, what=what, who=d.event.actor, path=path)
        d.tell_reviewers(registry_admins(d.db), letter, topic="review-waiting")

    return handle


def _version_data(version: Version) -> dict[str, Any]:
    return {
        "repo": version.model.repo_id,
        "commit": version.commit,
        "tag": version.requested_tag,
        "tier": version.model.tier,
        "url": f"/models/{version.model.repo_id}",
    }


def _version_published(d: Dispatch) -> None:
    version = d.db.get(Version, d.event.version_id)
    if version is None or version.commit is None:
        return
    repo = version.model.repo_id
    letter = messages.published(d.site, repo=repo, commit=version.commit, path=f"/models/{repo}")
    d.tell(version.created_by, letter, topic="version-published", category="publications")
    d.hook("version.published", _version_data(version), institution_id=version.model.institution_id)


def _version_withdrawn(d: Dispatch) -> None:
    version = d.db.get(Version, d.event.version_id)
    if version is None:
        return
    repo = version.model.repo_id
    letter = messages.withdrawn(
        d.site,
        repo=repo,
        commit=version.commit or str(version.id),
        reason=version.withdrawn_reason,
        path=f"/models/{repo}",
    )
    # The downloads list has one row per person: each downloader hears of it once.
    for row in downloaders(d.db, version):
        if row.user_id is not None:
            user = d.db.get(User, row.user_id)
            d.tell(user, letter, topic="version-withdrawn", category="withdrawals")
    data = {**_version_data(version), "reason": version.withdrawn_reason}
    d.hook("version.withdrawn", data, institution_id=version.model.institution_id)


HANDLERS: dict[str, Callable[[Dispatch], None]] = {
    "credential:accept": _credential_decided,
    "credential:reject": _credential_decided,
    "credential:revoke": _credential_decided,
    "training:accept": _training_decided,
    "training:reject": _training_decided,
    "access-request:create": _request_created,
    "access-request:accept": _request_decided,
    "access-request:reject": _request_decided,
    "access-request:revoke": _request_decided,
    "credential:apply": _waiting_for_admins("credentialing application", "/admin/credentials"),
    "training:submit": _waiting_for_admins("training certificate", "/admin/trainings"),
    "version:submit": _waiting_for_admins("model version", "/admin/reviews"),
    "version:publish": _version_published,
    "version:withdraw": _version_withdrawn,
}


def install(sessions: sessionmaker[Session], settings: Settings) -> None:
    """Queue the notifications of each transaction's events as part of its commit."""
    site = Site.of(settings)

    @event.listens_for(sessions, "after_flush")
    def _collect(db: Session, _context: Any) -> None:
        found = [e for e in db.new if isinstance(e, AuditEvent) and e.tag in HANDLERS]
        if found:
            db.info.setdefault(PENDING, []).extend(found)

    @event.listens_for(sessions, "before_commit")
    def _dispatch(db: Session) -> None:
        for recorded in db.info.pop(PENDING, []):
            notify(db, site, recorded)

    @event.listens_for(sessions, "after_rollback")
    def _forget(db: Session) -> None:
        db.info.pop(PENDING, None)


def notify(db: Session, site: Site, recorded: AuditEvent) -> None:
    """Queue what ``recorded`` implies. A fault here is logged, never the user's problem."""
    try:
        HANDLERS[recorded.tag](Dispatch(db, site, recorded))
    except (LookupError, AttributeError, TypeError, ValueError):
        # A malformed event (an old detail shape) must not undo the change it records.
        log.exception("could not queue the notifications of %s", recorded.tag)
