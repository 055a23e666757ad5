"""Single-use links sent by mail: verify an address, reset a password, change the address."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry.db import Base, UTCDateTime, utcnow
from registry.models.accounts import User

LINK_PURPOSES = ("verify", "reset", "change-email")


class EmailLink(Base):
    """Only the sha256 of the link's token is stored; the token itself is only in the mail."""

    __tablename__ = "email_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))
    # The address the link was sent to (for a change: the new address).
    email: Mapped[str] = mapped_column(String(320))
    # The token is HMAC(secret key, nonce): neither it nor the key is in the database.
    nonce: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()
