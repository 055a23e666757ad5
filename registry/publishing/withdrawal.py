"""Withdrawing a published version: downloads stop at once, the reason is shown."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from registry.audit.services import record_event
from registry.errors import BadRequest, Conflict, VersionWithdrawn
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


def refuse_withdrawn(version: Version) -> None:
    """Raise 410 for a withdrawn version, with the reason and the code stock clients know.

    Stock huggingface_hub shows X-Error-Message only for codes it knows (RevisionNotFound
    becomes ``RevisionNotFoundError``, which also stops it from using a cached copy); with
    any other code it ends in "check your connection". The JSON body keeps VersionWithdrawn.
    """
    if version.state != "withdrawn":
        return
    raise VersionWithdrawn(
        f"{version.model.repo_id} version {version.commit} was withdrawn on "
        f"{version.withdrawn_at:%Y-%m-%d}: {version.withdrawn_reason}. Its files can no "
        "longer be downloaded; delete any copy you hold.",
        headers={"X-Error-Code": "RevisionNotFound"},
    )
