"""The queues as queries: each filters by status, searches its people and names, and sorts
by when an item arrived (oldest first, so nobody waits at the bottom of a long list)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session, selectinload

from registry.models import AccessRequest, CredentialApplication, Model, Training, User, Version
from registry.queues.paging import Page, QueueQuery, paginate

STATUSES = ("pending", "accepted", "rejected", "revoked")
TRAINING_STATUSES = ("pending", "accepted", "rejected")
REVIEW_STATUSES = ("in-review",)
USER_STATUSES = ("active", "disabled", "admins")


def _like(query: QueueQuery, *columns: Any) -> ColumnElement[bool] | None:
    if not query.search:
        return None
    pattern = "%" + query.search.lower().replace("\\", "").replace("%", "").replace("_", "") + "%"
    return or_(*(func.lower(column).like(pattern) for column in columns))


def _ordered(statement: Select[Any], query: QueueQuery, arrived: Any, key: Any) -> Select[Any]:
    if query.sort == "newest":
        return statement.order_by(arrived.desc(), key.desc())
    return statement.order_by(arrived.asc(), key.asc())


def _searched(statement: Select[Any], query: QueueQuery, *columns: Any) -> Select[Any]:
    condition = _like(query, *columns)
    return statement.where(condition) if condition is not None else statement


def credential_applications(db: Session, query: QueueQuery) -> Page[CredentialApplication]:
    """Credential applications by status, searched by name, email and organisation."""
    statement = select(CredentialApplication).join(User, User.id == CredentialApplication.user_id)
    if query.status_filter:
        statement = statement.where(CredentialApplication.status == query.status_filter)
    statement = _searched(
        statement,
        query,
        User.email,
        User.display_name,
        CredentialApplication.full_name,
        CredentialApplication.affiliation,
    )
    statement = statement.options(selectinload(CredentialApplication.user))
    ordered = _ordered(statement, query, CredentialApplication.created_at, CredentialApplication.id)
    return paginate(db, ordered, query)


def trainings(db: Session, query: QueueQuery) -> Page[Training]:
    """Training certificates by status, searched by person and training kind."""
    statement = select(Training).join(User, User.id == Training.user_id)
    if query.status_filter:
        statement = statement.where(Training.status == query.status_filter)
    statement = _searched(statement, query, User.email, User.display_name, Training.kind)
    statement = statement.options(selectinload(Training.user))
    return paginate(db, _ordered(statement, query, Training.created_at, Training.id), query)


def _reviewable_requests(reviewer: User | None) -> Select[Any]:
    statement = select(AccessRequest).join(Model, Model.id == AccessRequest.model_id)
    if reviewer is not None and not reviewer.is_registry_admin:
        membership = reviewer.membership
        statement = statement.where(
            Model.institution_id == (membership.institution_id if membership else -1)
        )
    return statement


def access_requests(
    db: Session, query: QueueQuery, *, reviewer: User | None
) -> Page[AccessRequest]:
    """Access requests the reviewer may decide, searched by person and model."""
    statement = _reviewable_requests(reviewer).join(User, User.id == AccessRequest.user_id)
    if query.status_filter:
        statement = statement.where(AccessRequest.status == query.status_filter)
    statement = _searched(
        statement, query, User.email, User.display_name, Model.namespace, Model.name
    )
    statement = statement.options(
        selectinload(AccessRequest.model), selectinload(AccessRequest.user)
    )
    ordered = _ordered(statement, query, AccessRequest.created_at, AccessRequest.id)
    return paginate(db, ordered, query)


def version_reviews(db: Session, query: QueueQuery) -> Page[Version]:
    """Versions waiting for review, searched by model and requested tag."""
    statement = (
        select(Version)
        .join(Model, Model.id == Version.model_id)
        .where(Version.state == "in-review")
        .options(selectinload(Version.model))
    )
    statement = _searched(statement, query, Model.namespace, Model.name, Version.requested_tag)
    return paginate(db, _ordered(statement, query, Version.submitted_at, Version.id), query)


def users(db: Session, query: QueueQuery) -> Page[User]:
    """Every account, searched by email and name: active, disabled or registry admins."""
    statement = select(User).options(selectinload(User.membership))
    if query.status == "active":
        statement = statement.where(User.is_active.is_(True))
    elif query.status == "disabled":
        statement = statement.where(User.is_active.is_(False))
    elif query.status == "admins":
        statement = statement.where(User.is_registry_admin.is_(True))
    statement = _searched(statement, query, User.email, User.display_name)
    return paginate(db, _ordered(statement, query, User.created_at, User.id), query)


def pending_counts(db: Session, *, reviewer: User | None) -> dict[str, int]:
    """How many items wait in each queue (for the tabs), one count query each."""

    def count(statement: Select[Any]) -> int:
        return db.scalar(select(func.count()).select_from(statement.subquery())) or 0

    return {
        "credentials": count(
            select(CredentialApplication.id).where(CredentialApplication.status == "pending")
        ),
        "trainings": count(select(Training.id).where(Training.status == "pending")),
        "access-requests": count(
            _reviewable_requests(reviewer)
            .where(AccessRequest.status == "pending")
            .with_only_columns(AccessRequest.id)
        ),
        "reviews": count(select(Version.id).where(Version.state == "in-review")),
    }
