"""Resumable upload sessions and the files staged in them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry.db import Base, UTCDateTime, utcnow

SESSION_STATES = ("open", "committing", "committed", "aborted", "expired")


class UploadSession(Base):
    __tablename__ = "upload_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    files: Mapped[list[UploadFile]] = relationship(back_populates="session")


class UploadFile(Base):
    """A file declared in a session: its bytes are staged until they match size and sha256."""

    __tablename__ = "upload_files"
    __table_args__ = (UniqueConstraint("session_id", "path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("upload_sessions.id"), index=True)
    path: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    complete: Mapped[bool] = mapped_column(default=False)

    session: Mapped[UploadSession] = relationship(back_populates="files")
