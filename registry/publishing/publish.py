"""Publishing a version: one atomic step that makes it visible."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.audit.services import RequestInfo, record_event
from registry.errors import Conflict
from registry.models import Tag, User, Version
from registry.publishing.manifest import build_manifest, canonical_bytes, commit_id
from registry.repos import services as repos


def publish_version(
    db: Session,
    version: Version,
    *,
    actor: User | None,
    now: dt.datetime,
    request_info: RequestInfo | None = None,
) -> Version:
    """Assign the commit id, tag and sequence; visible once the caller commits."""
    model = version.model
    files = list(repos.version_files(db, version))
    if version.requested_tag:
        taken = db.scalar(
            select(Tag).where(Tag.model_id == model.id, Tag.name == version.requested_tag)
        )
        if taken is not None:
            raise Conflict(
                f"Tag {version.requested_tag!r} already names another version of "
                f"{model.repo_id}; choose a new tag."
            )
    publisher = version.created_by.email if version.created_by else "registry"
    manifest = build_manifest(model, version, files, publisher=publisher, published_at=now)
    body = canonical_bytes(manifest)
    version.manifest = body.decode()
    version.commit = commit_id(body)
    version.state = "published"
    version.published_at = now
    last_seq = db.scalar(
        select(func.max(Version.published_seq)).where(Version.model_id == model.id)
    )
    version.published_seq = (last_seq or 0) + 1
    if version.requested_tag:
        db.add(Tag(model_id=model.id, name=version.requested_tag, version_id=version.id))
    record_event(
        db,
        "version:publish",
        actor=actor,
        target=f"{model.repo_id}@{version.commit}",
        model_id=model.id,
        version_id=version.id,
        details={"tag": version.requested_tag, "files": len(files)},
        request_info=request_info,
        now=now,
    )
    db.flush()
    return version
