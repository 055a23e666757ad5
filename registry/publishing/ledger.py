"""Which blobs the registry holds and who references them (dedup, quotas, gc, fsck)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from sqlalchemy import func, select, union
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry.models import Blob, File, Model, Training, UploadFile, UploadSession, Version

# Versions whose files must stay stored; a rejected or abandoned version keeps no blobs alive.
LIVE_VERSION_STATES = ("in-review", "published", "withdrawn")
LIVE_SESSION_STATES = ("open",)


def record_blob(db: Session, sha256: str, size: int, now: dt.datetime) -> None:
    """Remember a stored blob; a no-op when it is already known (even under a race)."""
    if db.get(Blob, sha256) is not None:
        return
    try:
        with db.begin_nested():
            db.add(Blob(sha256=sha256, size=size, created_at=now))
    except IntegrityError:
        pass  # another request recorded the same content first: nothing to do


def institution_holds(db: Session, institution_id: int, sha256: str) -> bool:
    """Whether the institution already published or uploaded (in any session) these bytes.

    Only then may a declared file skip its upload: published sha256s are public (trees and
    manifests list them), so a wider dedup would let anyone claim a gated model's weights.
    """
    in_versions = (
        select(File.id)
        .join(Version, Version.id == File.version_id)
        .join(Model, Model.id == Version.model_id)
        .where(
            File.sha256 == sha256,
            Model.institution_id == institution_id,
            Version.state.in_(LIVE_VERSION_STATES),
        )
        .limit(1)
    )
    in_sessions = (
        select(UploadFile.id)
        .join(UploadSession, UploadSession.id == UploadFile.session_id)
        .where(
            UploadFile.sha256 == sha256,
            UploadFile.complete.is_(True),
            UploadSession.institution_id == institution_id,
        )
        .limit(1)
    )
    return db.scalar(in_versions) is not None or db.scalar(in_sessions) is not None


def institution_usage(db: Session, institution_id: int) -> tuple[int, set[str]]:
    """Bytes of distinct blobs in the institution's live versions and open sessions."""
    pairs = union(
        select(File.sha256, File.size)
        .join(Version, Version.id == File.version_id)
        .join(Model, Model.id == Version.model_id)
        .where(Model.institution_id == institution_id, Version.state.in_(LIVE_VERSION_STATES)),
        select(UploadFile.sha256, UploadFile.size)
        .join(UploadSession, UploadSession.id == UploadFile.session_id)
        .where(
            UploadSession.institution_id == institution_id,
            UploadSession.state.in_(LIVE_SESSION_STATES),
        ),
    ).subquery()
    rows = db.execute(select(pairs.c.sha256, pairs.c.size)).all()
    return sum(size for _, size in rows), {sha for sha, _ in rows}


def referenced_blobs(
    db: Session,
    *,
    ignoring_sessions: Collection[str] = (),
    among: Collection[str] | None = None,
) -> set[str]:
    """Every sha256 a live version, an open upload session (but those ignored: gc's dry run
    counts sessions about to expire as closed) or a training certificate uses; only those
    ``among`` the given ones when that is set."""
    files = (
        select(File.sha256)
        .join(Version, Version.id == File.version_id)
        .where(Version.state.in_(LIVE_VERSION_STATES))
    )
    uploads = (
        select(UploadFile.sha256)
        .join(UploadSession, UploadSession.id == UploadFile.session_id)
        .where(UploadSession.state.in_(LIVE_SESSION_STATES))
    )
    if ignoring_sessions:
        uploads = uploads.where(UploadSession.id.not_in(list(ignoring_sessions)))
    certificates = select(Training.certificate_sha256).where(
        Training.certificate_sha256.is_not(None)
    )
    if among is not None:
        files = files.where(File.sha256.in_(list(among)))
        uploads = uploads.where(UploadFile.sha256.in_(list(among)))
        certificates = certificates.where(Training.certificate_sha256.in_(list(among)))
    return set(db.scalars(files)) | set(db.scalars(uploads)) | set(db.scalars(certificates))


def blob_in_use(db: Session, sha256: str) -> bool:
    """Whether these bytes are recorded or referenced right now (gc asks just before it
    deletes them: an upload may have stored and recorded them again since its decision)."""
    if db.get(Blob, sha256) is not None:
        return True
    return bool(referenced_blobs(db, among=[sha256]))


def published_blobs(db: Session) -> dict[str, int]:
    """sha256 → size of every file of a live version (fsck checks that each is stored)."""
    rows = db.execute(
        select(File.sha256, func.max(File.size))
        .join(Version, Version.id == File.version_id)
        .where(Version.state.in_(LIVE_VERSION_STATES))
        .group_by(File.sha256)
    ).all()
    return {sha: size for sha, size in rows}
