"""What each user wants to be told (one row per user who changed the defaults)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base, UTCDateTime, utcnow

REVIEW_MODES = ("each", "digest", "off")


class NotificationPreference(Base):
    __tablename__ = "notification_preferences"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    decisions: Mapped[bool] = mapped_column(Boolean, default=True)
    reviews: Mapped[str] = mapped_column(String(16), default="each")
    expiry: Mapped[bool] = mapped_column(Boolean, default=True)
    withdrawals: Mapped[bool] = mapped_column(Boolean, default=True)
    publications: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
