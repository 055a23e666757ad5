"""Withdrawing a published version: downloads stop at once, the reason is shown."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from registry.audit.services import record_event
from registry.errors import BadRequest, Conflict
from registry.models import User, Version


def withdraw_version(
    db: Session,
    version: Version,
    reason: str,
    *,
    actor: User | None,
    now: dt.datetime,
) -> Version:
    """Mark the version withdrawn (its files stay stored but are never served again)."""
    if not reason.strip():
        raise BadRequest("Give a 'reason'; everyone who tries to download the version sees it.")
    if version.state != "published":
        raise Conflict(
            f"{version.model.repo_id} version {version.commit or version.id} is {version.state}; "
            "only published versions can be withdrawn."
        )
    version.state = "withdrawn"
    version.withdrawn_at = now
    version.withdrawn_reason = reason.strip()
    record_event(
        db,
        "version:withdraw",
        actor=actor,
        target=f"{version.model.repo_id}@{version.commit}",
        model_id=version.model_id,
        version_id=version.id,
        details={"reason": version.withdrawn_reason, "commit": version.commit},
        now=now,
    )
    db.flush()
    return version
