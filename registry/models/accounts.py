"""Institutions, users, memberships and API tokens."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry.accounts.addresses import email_key
from registry.db import Base, UTCDateTime, utcnow

ROLES = ("member", "publisher", "institution-admin")
TOKEN_SCOPES = ("read", "write", "admin")


class Institution(Base):
    __tablename__ = "institutions"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    memberships: Mapped[list[Membership]] = relationship(back_populates="institution")


def _email_key(context: DefaultExecutionContext) -> str:
    """A new row's key from its address (services set it explicitly; fixtures rely on this)."""
    return email_key(context.get_current_parameters()["email"])


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    # NFKC + case-folded address: what uniqueness is decided on (registry.accounts.addresses).
    # NULL only for accounts the identity migration found colliding with an older one.
    email_key: Mapped[str | None] = mapped_column(String(320), unique=True, default=_email_key)
    # When the owner of ``email`` followed a verification link (None: not yet proven).
    email_verified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_registry_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    terms_accepted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Bumped on logout and password change: session cookies carry it and die when it moves.
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    password_changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    membership: Mapped[Membership | None] = relationship(back_populates="user", uselist=False)


class Membership(Base):
    """A user belongs to at most one institution, with one role."""

    __tablename__ = "memberships"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    role: Mapped[str] = mapped_column(String(32), default="member")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(back_populates="membership")
    institution: Mapped[Institution] = relationship(back_populates="memberships")


class ApiToken(Base):
    """Only a hash of the token is stored; ``prefix`` is the visible start for recognition."""

    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("token_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The token that minted this one (API call authenticated by a token): it dies with it.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id"), index=True)

    user: Mapped[User] = relationship()
