"""The audit log: events appended without a lock, sealed in order into signed checkpoints."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base, UTCDateTime, utcnow


class AuditEvent(Base):
    """One recorded event. ``seq`` (its place in the log, from 1) stays NULL while the event
    is pending; the sealer assigns it and commits it to a checkpoint's Merkle tree."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int | None] = mapped_column(unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    tag: Mapped[str] = mapped_column(String(64), index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    actor: Mapped[str] = mapped_column(String(320), default="anonymous")
    target: Mapped[str] = mapped_column(String(300), default="")
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"), index=True)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id"), index=True)
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class AuditCheckpoint(Base):
    """A signed tree head: the first ``size`` events hash to ``root``.

    ``body`` is the exact signed text (``client.merkle.checkpoint_body``); ``leaves`` the hex
    leaf hashes of the events this seal added (``size - len(leaves)/64 + 1`` … ``size``),
    which the signed root authenticates, so ``audit verify`` can name a changed event;
    ``frontier`` the right edge of the tree, from which the next seal extends it.
    """

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    size: Mapped[int] = mapped_column(unique=True)
    root: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    key_id: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String(100))
    leaves: Mapped[str] = mapped_column(Text)
    frontier: Mapped[list[str]] = mapped_column(JSON)
    sealed_by: Mapped[str] = mapped_column(String(200), default="")  # host/pid, for operators


class AuditHead(Base):
    """One row that ``registry.publishing.locks.serialize_writes`` locks.

    It used to hold the audit chain's head, which made every audited request queue on it;
    events no longer touch it (the sealer orders them), so it is only the publishing lock.
    """

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(default=0)
    hash: Mapped[str] = mapped_column(String(64))
