"""Credential evidence reviewed by admins: applications, trainings, DUA signatures."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry.db import Base, UTCDateTime, utcnow
from registry.models.accounts import User

APPLICATION_STATES = ("pending", "accepted", "rejected", "revoked")
TRAINING_STATES = ("pending", "accepted", "rejected")


# One open (pending or accepted) application per user: a revoke leaves nothing behind.
OPEN_APPLICATION = text("status IN ('pending', 'accepted')")


class CredentialApplication(Base):
    __tablename__ = "credential_applications"
    __table_args__ = (
        Index(
            "uq_credential_applications_open",
            "user_id",
            unique=True,
            postgresql_where=OPEN_APPLICATION,
            sqlite_where=OPEN_APPLICATION,
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    full_name: Mapped[str] = mapped_column(String(200))
    affiliation: Mapped[str] = mapped_column(String(300))
    job_title: Mapped[str] = mapped_column(String(200), default="")
    reference_name: Mapped[str] = mapped_column(String(200))
    reference_email: Mapped[str] = mapped_column(String(320))
    research_summary: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str] = mapped_column(Text, default="")
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(foreign_keys=[user_id])


class Training(Base):
    """A training certificate (file in the blob store, or a verification URL)."""

    __tablename__ = "trainings"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    certificate_sha256: Mapped[str | None] = mapped_column(String(64))
    certificate_filename: Mapped[str | None] = mapped_column(String(255))
    certificate_content_type: Mapped[str | None] = mapped_column(String(100))
    verification_url: Mapped[str | None] = mapped_column(String(2000))
    completed_on: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str] = mapped_column(Text, default="")
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    valid_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(foreign_keys=[user_id])


class DuaSignature(Base):
    __tablename__ = "dua_signatures"
    __table_args__ = (UniqueConstraint("user_id", "dua"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    dua: Mapped[str] = mapped_column(String(100))
    full_name: Mapped[str] = mapped_column(String(200))
    text_sha256: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
