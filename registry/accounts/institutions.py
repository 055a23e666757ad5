"""Institutions, memberships with roles, and registry-admin flags."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from client.shared import rules
from registry.access.requirements import require_verified_email
from registry.accounts.services import find_user_by_email
from registry.accounts.validation import Problems
from registry.audit.services import record_event
from registry.errors import Conflict, NotFound
from registry.models import Institution, Membership, User
from registry.models.accounts import ROLES

SLUG_RE = rules.SLUG_RE


def get_institution(db: Session, slug: str) -> Institution:
    institution = db.scalar(select(Institution).where(Institution.slug == slug))
    if institution is None:
        raise NotFound(f"No institution {slug!r}; list them at /api/v1/institutions.")
    return institution


def list_institutions(db: Session) -> Sequence[Institution]:
    return db.scalars(select(Institution).order_by(Institution.slug)).all()


def create_institution(
    db: Session,
    *,
    slug: str,
    name: str,
    actor: User,
    now: dt.datetime,
) -> Institution:
    """Create an institution; its slug becomes the namespace of its models."""
    problems = Problems()
    slug = problems.text("slug", slug, max_length=64)
    if slug and not SLUG_RE.match(slug):
        problems.add("slug", "use lower-case letters, digits and '-' (it becomes the namespace)")
    name = problems.text("name", name, max_length=200)
    problems.raise_if_any("Cannot create the institution")
    if db.scalar(select(Institution.id).where(Institution.slug == slug)) is not None:
        raise Conflict(f"Institution {slug!r} already exists.")
    institution = Institution(slug=slug, name=name, created_at=now)
    db.add(institution)
    db.flush()
    record_event(
        db,
        "institution:create",
        actor=actor,
        target=f"institution:{slug}",
        details={"name": name},
        now=now,
    )
    db.flush()
    return institution


def get_user(db: Session, ident: str) -> User:
    """A user by numeric id or email."""
    user = None
    if (user_id := rules.parse_id(ident)) is not None:
        user = db.get(User, user_id)
    elif "@" in ident:
        user = find_user_by_email(db, ident)
    if user is None:
        raise NotFound(f"No user {ident!r}.")
    return user


def list_members(db: Session, institution: Institution) -> Sequence[Membership]:
    return db.scalars(
        select(Membership)
        .where(Membership.institution_id == institution.id)
        .order_by(Membership.id)
    ).all()


def set_membership(
    db: Session,
    institution: Institution,
    user: User,
    *,
    role: str,
    actor: User,
    now: dt.datetime,
) -> Membership:
    """Make ``user`` a member of ``institution`` with ``role`` (a user has one institution)."""
    if role not in ROLES:
        problems = Problems()
        problems.add("role", f"must be one of {', '.join(ROLES)}")
        problems.raise_if_any("Cannot set the membership")
    # Roles attach to proven addresses only: registering someone's address first gets nothing.
    require_verified_email(db, user, f"{user.email} cannot become {role} at {institution.slug}")
    membership = user.membership
    if membership is not None and membership.institution_id != institution.id:
        raise Conflict(
            f"{user.email} already belongs to {membership.institution.slug}; remove that "
            "membership first."
        )
    before = membership.role if membership is not None else None
    if membership is None:
        membership = Membership(
            user_id=user.id, institution_id=institution.id, role=role, created_at=now
        )
        db.add(membership)
    membership.role = role
    db.flush()
    record_event(
        db,
        "membership:set",
        actor=actor,
        target=f"institution:{institution.slug}/user:{user.email}",
        details={"role": role, "previous_role": before},
        now=now,
    )
    db.flush()
    db.refresh(user)
    return membership


def remove_membership(
    db: Session,
    institution: Institution,
    user: User,
    *,
    actor: User,
    now: dt.datetime,
) -> None:
    membership = user.membership
    if membership is None or membership.institution_id != institution.id:
        raise NotFound(f"{user.email} is not a member of {institution.slug}.")
    role = membership.role
    db.delete(membership)
    record_event(
        db,
        "membership:remove",
        actor=actor,
        target=f"institution:{institution.slug}/user:{user.email}",
        details={"previous_role": role},
        now=now,
    )
    db.flush()
    db.refresh(user)


def search_users(
    db: Session, query: str = "", *, limit: int = 100, offset: int = 0
) -> Sequence[User]:
    stmt = select(User).order_by(User.id)
    if query:
        like = f"%{query.lower()}%"
        stmt = stmt.where(
            or_(func.lower(User.email).like(like), func.lower(User.display_name).like(like))
        )
    return db.scalars(stmt.limit(limit).offset(offset)).all()


def update_user(
    db: Session,
    user: User,
    *,
    is_registry_admin: bool | None = None,
    is_active: bool | None = None,
    actor: User,
    now: dt.datetime,
) -> User:
    """Grant or remove registry-admin, enable or disable an account."""
    if user.id == actor.id and (is_registry_admin is False or is_active is False):
        raise Conflict("You cannot remove your own admin rights or disable yourself.")
    changes: dict[str, bool] = {}
    if is_registry_admin and not user.is_registry_admin:
        # Like a membership: the role goes to whoever proved the address, not who typed it.
        require_verified_email(db, user, f"{user.email} cannot become a registry admin")
    if is_registry_admin is not None and is_registry_admin != user.is_registry_admin:
        user.is_registry_admin = changes["is_registry_admin"] = is_registry_admin
    if is_active is not None and is_active != user.is_active:
        user.is_active = changes["is_active"] = is_active
        if not is_active:
            user.session_generation = (user.session_generation or 0) + 1
    if changes:
        record_event(
            db,
            "user:update",
            actor=actor,
            target=f"user:{user.email}",
            details=changes,
            now=now,
        )
        db.flush()
    return user
