"""Garbage collection: expire abandoned sessions, drop their staging, abort stray multipart
uploads, delete unreferenced blobs.

A blob is deleted only if no live version (in review, published, withdrawn) and no open
upload session refers to it, and it is older than the grace period. The final decision is
taken under the publishing lock, which a commit takes to turn its session into a version, so
gc reads one consistent view of what is referenced (never a file between its session and its
version). No storage call runs under that lock: the lock ends with the decision (its rows
deleted and committed), then the bytes are deleted, each after asking once more whether an
upload stored or referenced it meanwhile; a commit in between finds the blob's record gone
and asks for the file again. Expired sessions' staging is dropped with the rest of the
closed sessions' staging, after the expiry committed.

Every step first decides from one listing, then acts on that decision, and a dry run treats
the sessions it would expire as expired: so ``--dry-run`` reports exactly what a real run
removes (given nothing changes in between).
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
from registry.storage import BlobStore, IncompleteUpload


@dataclasses.dataclass
class GcReport:
    expired_sessions: list[str] = dataclasses.field(default_factory=list)
    staging_removed: list[str] = dataclasses.field(default_factory=list)
    uploads_aborted: list[str] = dataclasses.field(default_factory=list)  # object keys
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
    staged = list(blobs.iter_staging())  # before expiring: those sessions' staging counts too
    multipart = list(blobs.iter_incomplete_uploads())
    expire_sessions(db, blobs, now=now, report=report, dry_run=dry_run)
    closing = set(report.expired_sessions)
    drop_staging(
        db, blobs, staged, now=now, grace=grace, report=report, dry_run=dry_run, closing=closing
    )
    abort_uploads(blobs, multipart, now=now, grace=grace, report=report, dry_run=dry_run)
    delete_blobs(
        db,
        blobs,
        now=now,
        grace=grace,
        report=report,
        dry_run=dry_run,
        closing=closing if dry_run else set(),
    )
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
                discard=False,  # under the lock: drop_staging removes it just after
            )
        commit_early(db, "gc: expired sessions are closed before their bytes are collected")


def drop_staging(
    db: Session,
    blobs: BlobStore,
    staged: list[tuple[str, dt.datetime]],
    *,
    now: dt.datetime,
    grace: dt.timedelta,
    report: GcReport,
    dry_run: bool,
    closing: set[str],
) -> None:
    """Staged bytes of closed sessions go at once; of unknown sessions after the grace."""
    live = {
        upload_key(row)
        for row in db.scalars(
            select(UploadFile)
            .join(UploadSession, UploadSession.id == UploadFile.session_id)
            .where(UploadSession.state == "open", UploadFile.complete.is_(False))
        )
        if row.session_id not in closing
    }
    for key, modified in staged:
        if key in live:
            continue
        known = db.get(UploadSession, session_of_upload_key(key)) is not None
        if known or modified <= now - grace:
            report.staging_removed.append(key)
            if not dry_run:
                blobs.stage_discard(key)  # a no-op for staging the expiry already dropped


def abort_uploads(
    blobs: BlobStore,
    multipart: list[IncompleteUpload],
    *,
    now: dt.datetime,
    grace: dt.timedelta,
    report: GcReport,
    dry_run: bool,
) -> None:
    """Multipart uploads of dropped staging go with it; those no staging names (a writer
    stopped before recording its chunk) after the grace period."""
    dropped = set(report.staging_removed)
    for upload in multipart:
        owned = upload.upload_key is not None
        if (owned and upload.upload_key in dropped) or (
            not owned and upload.initiated <= now - grace
        ):
            report.uploads_aborted.append(upload.key)
            if not dry_run:
                blobs.abort_incomplete_upload(upload)


def delete_blobs(
    db: Session,
    blobs: BlobStore,
    *,
    now: dt.datetime,
    grace: dt.timedelta,
    report: GcReport,
    dry_run: bool,
    closing: set[str],
) -> None:
    referenced = ledger.referenced_blobs(db, ignoring_sessions=closing)
    db.rollback()
    listed = list(blobs.iter_blobs())
    candidates = [
        (sha, size)
        for sha, size, modified in listed
        if sha not in referenced and modified <= now - grace
    ]
    serialize_writes(db)
    referenced = ledger.referenced_blobs(db, ignoring_sessions=closing)  # again, under the lock
    report.blobs_removed = [(sha, size) for sha, size in candidates if sha not in referenced]
    removed = {sha for sha, _ in report.blobs_removed}
    stored = {sha for sha, _, _ in listed} - removed
    for row in db.scalars(select(Blob)).all():
        # The records of removed bytes, and of bytes that are gone and unneeded.
        if row.sha256 in removed or (row.sha256 not in stored and row.sha256 not in referenced):
            report.rows_removed += 1
            if not dry_run:
                db.delete(row)
    if dry_run:
        db.rollback()
        return
    # The decision is committed and the lock let go before any byte is deleted; bytes an
    # upload referred to or stored again meanwhile are kept.
    commit_early(db, "gc: end the write lock before deleting blobs")
    deleted = []
    for sha, size in report.blobs_removed:
        # Asked again just before each delete (one short read, no lock): an upload may have
        # stored and recorded these bytes since the decision, and a commit that finds their
        # record gone asks for them again (``commit._require_recorded``).
        in_use = ledger.blob_in_use(db, sha)
        db.rollback()
        if not in_use:
            blobs.delete(sha)
            deleted.append((sha, size))
    report.blobs_removed = deleted
