"""Publishing a version: one atomic step that seals, signs and makes it visible."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from client.shared.rules import canonical_bytes, commit_id
from registry.audit.services import record_event
from registry.errors import Conflict
from registry.models import Tag, User, Version
from registry.publishing.locks import serialize_writes
from registry.publishing.manifest import FileLike, build_manifest, manifest_time
from registry.publishing.signing import ManifestSigner
from registry.repos import services as repos


def publisher_of(version: Version) -> str:
    return version.created_by.email if version.created_by is not None else "registry"


def seal_manifest(version: Version, files: list[FileLike], at: dt.datetime) -> bytes:
    """The canonical manifest bytes for ``version`` with ``published_at`` = ``at``."""
    manifest = build_manifest(
        version.model, version, files, publisher=publisher_of(version), published_at=at
    )
    return canonical_bytes(manifest)


def publish_version(
    db: Session,
    version: Version,
    *,
    actor: User | None,
    now: dt.datetime,
    signer: ManifestSigner,
) -> Version:
    """Seal, sign, tag and sequence the version; visible once the caller commits."""
    serialize_writes(db)
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
    if version.publisher_signature and version.manifest:
        body = _sealed_body(db, version, files)
    else:
        body = seal_manifest(version, files, now)
    version.manifest = body.decode("ascii")
    version.commit = commit_id(body)
    version.signature = signer.sign(body)
    version.signing_key_id = signer.key_id
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
        details={
            "tag": version.requested_tag,
            "files": len(files),
            "key_id": signer.key_id,
            "publisher_key_id": version.publisher_key_id,
        },
        now=now,
    )
    db.flush()
    return version


def _sealed_body(db: Session, version: Version, files: list[FileLike]) -> bytes:
    """The publisher-signed manifest, unchanged, if it still describes the version."""
    sealed_at = manifest_time(version.manifest or "")
    body = seal_manifest(version, files, sealed_at)
    if body.decode("ascii") != version.manifest:
        raise Conflict(
            f"{version.model.repo_id} version {version.id} changed since its publisher signed "
            "the manifest (its model's tier or DUA?); reject it and upload it again."
        )
    newer = [
        v.manifest
        for v in db.scalars(
            select(Version).where(
                Version.model_id == version.model_id,
                Version.state.in_(repos.VISIBLE_STATES),
                Version.id != version.id,
            )
        )
        if v.manifest and manifest_time(v.manifest) > sealed_at
    ]
    if newer:
        raise Conflict(
            f"{version.model.repo_id} version {version.id} was signed at "
            f"{sealed_at:%Y-%m-%d %H:%M:%S} UTC, before the newest published version: clients "
            "would take it for a "
            "rollback. Reject it and have the publisher sign a new manifest preview."
        )
    return body
