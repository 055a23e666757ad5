"""Garbage collection: expire abandoned sessions, drop their staging, delete unreferenced blobs.

A blob is deleted only if no live version (in review, published, withdrawn) and no open
upload session refers to it, and it is older than the grace period. The final decision is
taken under the publishing lock, which a commit also holds while it checks its blobs exist,
so a commit never publishes a blob that gc is removing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db import commit_early
from registry.models import Blob, UploadFile, UploadSession
from registry.publishing import ledger
from registry.publishing.locks import serialize_writes
from registry.publishing.sessions import abort_session, session_of_upload_key, upload_key
from registry.storage import BlobStore


@dataclasses.dataclass
class GcReport:
    expired_sessions: list[str] = dataclasses.field(default_factory=list)
    staging_removed: list[str] = dataclasses.field(default_factory=list)
    blobs_removed: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    rows_removed: int = 0

    @property
    def bytes_freed(self) -> int:
        return sum(size for _, size in self.blobs_removed)


def collect_garbage(
    db: Session, blobs: BlobStore, *, now: dt.datetime, grace: dt.timedelta, dry_run: bool = False
) -> GcReport:
    """Run every step; with ``dry_run`` only report what would go."""
    report = GcReport()
    expire_sessions(db, blobs, now=now, report=report, dry_run=dry_run)
    drop_staging(db, blobs, now=now, grace=grace, report=report, dry_run=dry_run)
    delete_blobs(db, blobs, now=now, grace=grace, report=report, dry_run=dry_run)
    return report


def expire_sessions(
    db: Session, blobs: BlobStore, *, now: dt.datetime, report: GcReport, dry_run: bool
) -> None:
    expired = db.scalars(
        select(UploadSession).where(UploadSession.state == "open", UploadSession.expires_at <= now)
    ).all()
    for upload in expired:
        report.expired_sessions.append(upload.id)
        if dry_run:
            continue
        serialize_writes(db)
        db.refresh(upload)
        if upload.state == "open" and upload.expires_at <= now:
            abort_session(
                db,
                blobs,
                upload,
                actor=None,
                now=now,
                reason="the upload session expired",
                state="expired",
            )
        commit_early(db, "gc: expired sessions are closed before their bytes are collected")


def drop_staging(
    db: Session,
    blobs: BlobStore,
    *,
    now: dt.datetime,
    grace: dt.timedelta,
    report: GcReport,
    dry_run: bool,
) -> None:
    """Staged bytes of closed sessions go at once; of unknown sessions after the grace."""
    live = {
        upload_key(row)
        for row in db.scalars(
            select(UploadFile)
            .join(UploadSession, UploadSession.id == UploadFile.session_id)
            .where(UploadSession.state == "open", UploadFile.complete.is_(False))
        )
    }
    for key, modified in list(blobs.iter_staging()):
        if key in live:
            continue
        known = db.get(UploadSession, session_of_upload_key(key)) is not None
        if known or modified <= now - grace:
            report.staging_removed.append(key)
            if not dry_run:
                blobs.stage_discard(key)


def delete_blobs(
    db: Session,
    blobs: BlobStore,
    *,
    now: dt.datetime,
    grace: dt.timedelta,
    report: GcReport,
    dry_run: bool,
) -> None:
    referenced = ledger.referenced_blobs(db)
    db.rollback()
    candidates = [
        (sha, size)
        for sha, size, modified in blobs.iter_blobs()
        if sha not in referenced and modified <= now - grace
    ]
    serialize_writes(db)
    referenced = ledger.referenced_blobs(db)  # again, under the lock
    for sha, size in candidates:
        if sha in referenced:
            continue
        report.blobs_removed.append((sha, size))
        if not dry_run:
            blobs.delete(sha)
            row = db.get(Blob, sha)
            if row is not None:
                db.delete(row)
                report.rows_removed += 1
    stored = {sha for sha, _, _ in blobs.iter_blobs()} if not dry_run else set()
    if not dry_run:
        for row in db.scalars(select(Blob)).all():
            if row.sha256 not in stored and row.sha256 not in referenced:
                db.delete(row)  # a record of bytes that are gone and unneeded
                report.rows_removed += 1
    if dry_run:
        db.rollback()
    else:
        commit_early(db, "gc: end the write lock taken for deleting blobs")
