"""Each user's choice of what to receive (defaults: everything, reviews one mail each)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from registry.accounts.validation import Problems
from registry.models import NotificationPreference, User
from registry.models.notifications import REVIEW_MODES

# Setting name -> what it means, as the settings page and the API describe it.
CATEGORIES = {
    "decisions": "Decisions on your credential application, trainings and access requests",
    "reviews": "New items waiting for your review (registry and institution admins)",
    "expiry": "Your training or an access grant expiring within 30 days, and when it lapses",
    "withdrawals": "A version you downloaded was withdrawn",
    "publications": "A version you submitted was published",
}
FLAGS = ("decisions", "expiry", "withdrawals", "publications")


def preferences(db: Session, user: User) -> NotificationPreference:
    """The user's settings (the defaults, unsaved, when they never changed them)."""
    found = db.get(NotificationPreference, user.id)
    if found is not None:
        return found
    return NotificationPreference(
        user_id=user.id,
        decisions=True,
        reviews="each",
        expiry=True,
        withdrawals=True,
        publications=True,
    )


def wants(db: Session, user: User, category: str) -> bool:
    """Whether ``user`` receives mail of ``category`` right away."""
    chosen = preferences(db, user)
    if category == "reviews":
        return chosen.reviews == "each"
    return bool(getattr(chosen, category))


def update_preferences(
    db: Session, user: User, values: dict[str, Any], *, now: dt.datetime
) -> NotificationPreference:
    """Change some settings; unknown names and wrong types are refused together."""
    problems = Problems()
    for name in values:
        if name not in CATEGORIES:
            problems.add(name, f"is not a setting; use {', '.join(CATEGORIES)}")
    for name in FLAGS:
        if name in values and not isinstance(values[name], bool):
            problems.add(name, "must be true or false")
    if "reviews" in values and values["reviews"] not in REVIEW_MODES:
        problems.add("reviews", f"must be one of {', '.join(REVIEW_MODES)}")
    problems.raise_if_any("Cannot save the notification settings")
    chosen = db.get(NotificationPreference, user.id)
    if chosen is None:
        chosen = preferences(db, user)
        db.add(chosen)
    for name, value in values.items():
        setattr(chosen, name, value)
    chosen.updated_at = now
    db.flush()
    return chosen


def as_dict(chosen: NotificationPreference) -> dict[str, Any]:
    return {name: getattr(chosen, name) for name in CATEGORIES}
