"""The notification settings body: only the settings there are, each of its own type."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict

from registry.api.schemas import Body


class NotificationSettings(Body):
    """Send only the settings to change; a name that is not a setting is refused."""

    model_config = ConfigDict(strict=True, extra="forbid")

    decisions: bool = True
    reviews: Literal["each", "digest", "off"] = "each"
    expiry: bool = True
    withdrawals: bool = True
    publications: bool = True
