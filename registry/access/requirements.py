"""Checking a tier's requirements for one user and one model against the database.

Each check answers ``None`` (met) or a ``Missing`` that says what is wrong and where to
fix it. No answer is cached: every call reads the current rows (only the SQL of the
combined "which are met?" query is built once per requirement shape).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, bindparam, func, or_, select
from sqlalchemy.orm import Session

from registry.access import fixes
from registry.access.decision import Missing
from registry.access.policy import PolicySet, TierSpec
from registry.errors import Conflict
from registry.models import (
    AccessRequest,
    CredentialApplication,
    DuaSignature,
    EmailLink,
    Model,
    Training,
    User,
)


def _day(value: dt.datetime | dt.date | None) -> str:
    return value.strftime("%Y-%m-%d") if value is not None else "an unknown date"


def model_dua(policies: PolicySet, model: Model) -> str | None:
    """The DUA a model requires: its own, else its tier's."""
    if model.dua:
        return model.dua
    tier = policies.tiers.get(model.tier)
    return tier.dua if tier is not None else None


def unverified_email(db: Session, user: User) -> Missing | None:
    """``None`` once ``user`` proved their address, else what to do and where the link went."""
    if user.email_verified_at is not None:
        return None
    return _email_missing(db, user)


def require_verified_email(db: Session, user: User, refused: str) -> None:
    """Refuse what would attach a role or evidence to an unproven address (409, and why)."""
    missing = unverified_email(db, user)
    if missing is not None:
        raise Conflict(
            f"{refused} until the address is verified. {missing.sentence()}",
            details={"missing": [missing.to_dict()]},
        )


def _email_missing(db: Session, user: User) -> Missing:
    sent = db.scalar(
        select(func.max(EmailLink.created_at)).where(
            EmailLink.user_id == user.id,
            EmailLink.purpose == "verify",
            EmailLink.email == user.email,
        )
    )
    if sent is not None:
        verb = f"link sent to {user.email} on {sent:%Y-%m-%d %H:%M} UTC, resend"
    else:
        verb = f"no link sent to {user.email} yet, send one"
    message = f"Email address {user.email} not verified: verify your email"
    return Missing("email-verified", message, fixes.VERIFY_EMAIL, verb)


def describe(policies: PolicySet, requirement: str, model: Model) -> str:
    """A requirement in plain words (for users who are not logged in yet)."""
    kind, _, arg = requirement.partition(":")
    if requirement == "authenticated":
        return "an account"
    if requirement == "email-verified":
        return "a verified email address"
    if requirement == "terms-accepted":
        return "accepted terms of use"
    if requirement == "credentialed":
        return "credentialed researcher status"
    if kind == "training":
        return f"a valid {policies.trainings[arg].title} training"
    if requirement == "dua-signed":
        return f"a signed DUA {model_dua(policies, model)}"
    if kind == "dua":
        return f"a signed DUA {arg}"
    if requirement == "access-request-accepted":
        return "an accepted access request"
    return requirement


class RequirementChecker:
    """Evaluates requirements for ``user`` at time ``now``.

    Whether a requirement is met is decided in one place, ``_met`` (one query for all of a
    tier's requirements); the ``_why_*`` methods only explain an unmet one, reading the rows
    that say what to fix.
    """

    def __init__(self, policies: PolicySet, db: Session, user: User, now: dt.datetime) -> None:
        self.policies, self.db, self.user, self.now = policies, db, user, now

    def unmet(self, tier: TierSpec, model: Model) -> list[Missing]:
        """Every requirement of ``tier`` that ``user`` does not meet for ``model``."""
        met = self._met(tier.requires, model)
        return [self._why(r, model) for r in tier.requires if not met[r]]

    def check(self, requirement: str, model: Model) -> Missing | None:
        """What is missing for one requirement, or ``None`` when it is met."""
        if self._met((requirement,), model)[requirement]:
            return None
        return self._why(requirement, model)

    def _met(self, requirements: Sequence[str], model: Model) -> dict[str, bool]:
        """Whether each requirement is met: one query for those the database answers."""
        met: dict[str, bool] = {}
        asked: list[tuple[str, tuple[str, str]]] = []
        for requirement in requirements:
            kind, _, arg = requirement.partition(":")
            if requirement == "authenticated":
                met[requirement] = True
            elif requirement == "email-verified":
                met[requirement] = self.user.email_verified_at is not None
            elif requirement == "terms-accepted":
                met[requirement] = self.user.terms_accepted_at is not None
            elif requirement == "credentialed":
                asked.append((requirement, ("credentialed", "")))
            elif kind == "training" and arg in self.policies.trainings:
                asked.append((requirement, ("training", arg)))
            elif requirement == "dua-signed" or kind == "dua":
                dua = model_dua(self.policies, model) if kind != "dua" else arg
                if dua is None:
                    met[requirement] = False
                else:
                    asked.append((requirement, ("dua", dua)))
            elif requirement == "access-request-accepted":
                asked.append((requirement, ("grant", "")))
            else:
                met[requirement] = False  # unknown: deny by default
        if asked:
            params = {"user_id": self.user.id, "model_id": model.id, "now": self.now}
            statement = _met_statement(tuple(shape for _, shape in asked))
            # Plain booleans: run on the session's connection, past the ORM's result machinery.
            answers = self.db.connection().execute(statement, params).one()
            for (requirement, _), answer in zip(asked, answers, strict=True):
                met[requirement] = bool(answer)
        return met

    def _why(self, requirement: str, model: Model) -> Missing:
        kind, _, arg = requirement.partition(":")
        if requirement == "email-verified":
            return _email_missing(self.db, self.user)
        if requirement == "terms-accepted":
            return self._why_terms()
        if requirement == "credentialed":
            return self._why_credentialed()
        if requirement == "dua-signed":
            return self._why_dua(requirement, model_dua(self.policies, model))
        if requirement == "access-request-accepted":
            return self._why_grant(model)
        if kind == "training" and arg in self.policies.trainings:
            return self._why_training(requirement, arg)
        if kind == "dua":
            return self._why_dua(requirement, arg)
        return Missing(requirement, f"unknown requirement {requirement!r} (deny by default)")

    def _why_terms(self) -> Missing:
        return Missing(
            "terms-accepted", "Registry terms of use not accepted", fixes.TERMS, "accept them"
        )

    def _why_credentialed(self) -> Missing:
        apps = self.db.scalars(
            select(CredentialApplication)
            .where(CredentialApplication.user_id == self.user.id)
            .order_by(CredentialApplication.created_at.desc(), CredentialApplication.id.desc())
        ).all()
        url = fixes.CREDENTIALS
        if not apps:
            return Missing("credentialed", "Not a credentialed researcher", url, "apply")
        latest = apps[0]
        if latest.status == "pending":
            message = (
                f"Credentialing application submitted on {_day(latest.created_at)} "
                "is awaiting review"
            )
            return Missing("credentialed", message, url, "see its status")
        verb = "rejected" if latest.status == "rejected" else "revoked"
        reason = f": {latest.reason}" if latest.reason else ""
        message = f"Credentialed status {verb} on {_day(latest.decided_at)}{reason}"
        return Missing("credentialed", message, url, "apply again")

    def _why_training(self, requirement: str, kind: str) -> Missing:
        spec = self.policies.trainings[kind]
        rows = self.db.scalars(
            select(Training).where(Training.user_id == self.user.id, Training.kind == kind)
        ).all()
        accepted = [t for t in rows if t.status == "accepted" and t.valid_until is not None]
        best = max(accepted, key=lambda t: t.valid_until, default=None)  # type: ignore[arg-type,return-value]
        url = fixes.TRAININGS
        pending = [t for t in rows if t.status == "pending"]
        if best is not None:
            message = f"{spec.title} training expired on {_day(best.valid_until)}"
            if pending:
                return Missing(requirement, f"{message}; the renewal awaits review", url, "see")
            return Missing(requirement, message, url, "renew")
        if pending:
            message = f"{spec.title} training submitted on {_day(pending[-1].created_at)}"
            return Missing(requirement, f"{message} is awaiting review", url, "see its status")
        if rows:
            latest = max(rows, key=lambda t: t.id)
            reason = f": {latest.reason}" if latest.reason else ""
            message = f"{spec.title} training was rejected{reason}"
            return Missing(requirement, message, url, "submit a new certificate")
        return Missing(requirement, f"{spec.title} training not on file", url, "submit it")

    def _why_dua(self, requirement: str, dua: str | None) -> Missing:
        if dua is None:
            return Missing(requirement, "The model names no DUA to sign (deny by default)")
        return Missing(requirement, f"DUA {dua} not signed", fixes.dua_url(dua), "sign")

    def _why_grant(self, model: Model) -> Missing:
        requests = self.db.scalars(
            select(AccessRequest)
            .where(AccessRequest.user_id == self.user.id, AccessRequest.model_id == model.id)
            .order_by(AccessRequest.id.desc())
        ).all()
        url = fixes.request_access_url(model.repo_id)
        req_name = "access-request-accepted"
        if not requests:
            return Missing(
                req_name, f"No accepted access request for {model.repo_id}", url, "request access"
            )
        latest = requests[0]
        reason = f": {latest.reason}" if latest.reason else ""
        if latest.status == "pending":
            message = (
                f"Access request for {model.repo_id} submitted on {_day(latest.created_at)} "
                "is awaiting review by the publishing institution"
            )
            return Missing(req_name, message, url, "see its status")
        if latest.status == "accepted":
            message = f"Access to {model.repo_id} expired on {_day(latest.expires_at)}"
            return Missing(req_name, message, url, "request again")
        if latest.status == "revoked":
            message = f"Access to {model.repo_id} was revoked on {_day(latest.revoked_at)}{reason}"
            return Missing(req_name, message, url, "request again")
        message = (
            f"Access request for {model.repo_id} was rejected on {_day(latest.decided_at)}{reason}"
        )
        return Missing(req_name, message, url, "request again")


@functools.lru_cache(maxsize=64)
def _met_statement(shape: tuple[tuple[str, str], ...]) -> Select[Any]:
    """One EXISTS per requirement: the only definition of when each one is met.

    Built once per requirement shape, then reused.

    The shape comes from the policy (a handful of distinct tiers), so the cache stays small;
    the user, model and time are bound per request.
    """
    user_id, model_id, now = bindparam("user_id"), bindparam("model_id"), bindparam("now")
    conditions = []
    for kind, arg in shape:
        if kind == "credentialed":
            query = select(CredentialApplication.id).where(
                CredentialApplication.user_id == user_id,
                CredentialApplication.status == "accepted",
            )
        elif kind == "training":
            query = select(Training.id).where(
                Training.user_id == user_id,
                Training.kind == arg,
                Training.status == "accepted",
                Training.valid_until > now,
            )
        elif kind == "dua":
            query = select(DuaSignature.id).where(
                DuaSignature.user_id == user_id, DuaSignature.dua == arg
            )
        else:
            query = select(AccessRequest.id).where(
                AccessRequest.user_id == user_id,
                AccessRequest.model_id == model_id,
                AccessRequest.status == "accepted",
                or_(AccessRequest.expires_at.is_(None), AccessRequest.expires_at > now),
            )
        conditions.append(query.exists())
    return select(*conditions)
