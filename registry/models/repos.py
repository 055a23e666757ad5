"""Models (repos), immutable versions, tags, files, blobs and access requests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry.db import Base, UTCDateTime, utcnow
from registry.models.accounts import Institution, User

VERSION_STATES = ("draft", "in-review", "published", "rejected", "withdrawn")
# At most one version waiting for review per tag: the tag is reserved when it is submitted.
RESERVED_TAG = text("state = 'in-review' AND requested_tag IS NOT NULL")
# At most one pending access request per user and model, whatever the requests race.
PENDING_REQUEST = text("status = 'pending'")
ACCESS_REQUEST_STATES = ("pending", "accepted", "rejected", "revoked")


class Model(Base):
    """A repo ``namespace/name``; the namespace is the owning institution's slug."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("namespace", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    namespace: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(96))
    tier: Mapped[str] = mapped_column(String(64))
    dua: Mapped[str | None] = mapped_column(String(100))
    # Gated-model form fields, e.g. [{"name": "purpose", "label": "...", "type": "text"}].
    access_fields: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    institution: Mapped[Institution] = relationship()
    versions: Mapped[list[Version]] = relationship(
        back_populates="model", foreign_keys="Version.model_id", order_by="Version.id"
    )

    @property
    def repo_id(self) -> str:
        return f"{self.namespace}/{self.name}"


class Version(Base):
    """An immutable snapshot. ``commit`` is the 40-hex id derived from its manifest."""

    __tablename__ = "versions"
    __table_args__ = (
        Index(
            "uq_versions_reserved_tag",
            "model_id",
            "requested_tag",
            unique=True,
            postgresql_where=RESERVED_TAG,
            sqlite_where=RESERVED_TAG,
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    commit: Mapped[str | None] = mapped_column(String(40), unique=True)
    state: Mapped[str] = mapped_column(String(16), default="draft")
    # Tag requested at upload; becomes a Tag row on publish.
    requested_tag: Mapped[str | None] = mapped_column(String(128))
    card_data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Large texts load on first access, so hot read paths (resolve) stay light.
    card_text: Mapped[str] = mapped_column(Text, default="", deferred=True)
    base_version_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Published versions are ordered by this sequence; ``main`` is the highest published.
    published_seq: Mapped[int | None] = mapped_column(Integer)
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reject_reason: Mapped[str] = mapped_column(Text, default="")
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    withdrawn_reason: Mapped[str] = mapped_column(Text, default="")
    validation_report: Mapped[list[dict[str, Any]]] = mapped_column(
        JSON, default=list, deferred=True
    )
    manifest: Mapped[str | None] = mapped_column(Text, deferred=True)
    signature: Mapped[str | None] = mapped_column(String(200))
    signing_key_id: Mapped[str | None] = mapped_column(String(64))
    publisher_signature: Mapped[str | None] = mapped_column(String(200))
    publisher_key_id: Mapped[str | None] = mapped_column(String(64))

    model: Mapped[Model] = relationship(back_populates="versions", foreign_keys=[model_id])
    base_version: Mapped[Version | None] = relationship(remote_side=[id])
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    files: Mapped[list[File]] = relationship(back_populates="version", order_by="File.path")
    tags: Mapped[list[Tag]] = relationship(back_populates="version")


class Tag(Base):
    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("model_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    version: Mapped[Version] = relationship(back_populates="tags")


class File(Base):
    __tablename__ = "files"
    __table_args__ = (UniqueConstraint("version_id", "path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), index=True)
    path: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)

    version: Mapped[Version] = relationship(back_populates="files")


class Blob(Base):
    """A stored content-addressed blob; used by gc and fsck."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AccessRequest(Base):
    __tablename__ = "access_requests"
    __table_args__ = (
        Index(
            "uq_access_requests_pending",
            "user_id",
            "model_id",
            unique=True,
            postgresql_where=PENDING_REQUEST,
            sqlite_where=PENDING_REQUEST,
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str] = mapped_column(Text, default="")
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    model: Mapped[Model] = relationship()
    user: Mapped[User] = relationship(foreign_keys=[user_id])
