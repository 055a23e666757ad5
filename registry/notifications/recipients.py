"""Whom to tell: reviewers of each queue, and whether an account may be mailed at all.

Notifications go only to active accounts with a verified address, so nobody can use the
registry to send mail to an address they merely typed in.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.models import Membership, User


def reachable(user: User | None) -> bool:
    return user is not None and user.is_active and user.email_verified_at is not None


def registry_admins(db: Session) -> list[User]:
    users = db.scalars(select(User).where(User.is_registry_admin.is_(True)).order_by(User.id))
    return [u for u in users if reachable(u)]


def institution_admins(db: Session, institution_id: int) -> list[User]:
    users = db.scalars(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(
            Membership.institution_id == institution_id,
            Membership.role == "institution-admin",
        )
        .order_by(User.id)
    )
    return [u for u in users if reachable(u)]


def request_reviewers(db: Session, institution_id: int) -> list[User]:
    """Who decides access requests for a model: its institution's admins and registry admins."""
    seen: dict[int, User] = {}
    for user in [*institution_admins(db, institution_id), *registry_admins(db)]:
        seen.setdefault(user.id, user)
    return list(seen.values())
