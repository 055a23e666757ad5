"""Committing an upload session: verify, validate every file, then submit or publish."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from client.shared.model_card import CARD_PATH
from registry.access.policy import PolicySet
from registry.audit.services import record_event
from registry.db import commit_early
from registry.errors import Conflict, ValidationFailed
from registry.models import Blob, File, Tag, UploadFile, UploadSession, User, Version
from registry.publishing import evaluation_policy, institution_keys
from registry.publishing.chunks import finalize_file, received
from registry.publishing.locks import serialize_writes
from registry.publishing.manifest import manifest_time
from registry.publishing.publish import publish_version, seal_manifest
from registry.publishing.sessions import (
    abort_session,
    require_open,
    session_files,
    stored_as_declared,
)
from registry.publishing.signing import ManifestSigner
from registry.publishing.tier_floor import check_floor
from registry.publishing.validation import FileEntry, Problem, validate_version
from registry.storage import BlobStore

MAX_CARD_TEXT = 5 * 1024 * 1024


class UploadIncomplete(Conflict):
    """Some declared files have not fully arrived; ``details["incomplete"]`` lists them."""

    code = "UploadIncomplete"


def preview_manifest(db: Session, upload: UploadSession, now: dt.datetime) -> bytes:
    """The exact manifest bytes a publisher signs; the first preview fixes its time."""
    require_open(upload, now)
    version = db.get(Version, upload.version_id)
    assert version is not None
    files = session_files(db, upload)
    at = manifest_time(version.manifest) if version.manifest else now
    body = seal_manifest(version, list(files), at)
    version.manifest = body.decode("ascii")
    db.flush()
    return body


def commit_session(
    db: Session,
    blobs: BlobStore,
    upload: UploadSession,
    *,
    review_required: bool,
    max_file_size: int,
    policies: PolicySet | None = None,
    signer: Callable[[], ManifestSigner],
    publisher_signature: str | None,
    publisher_key_id: str | None,
    actor: User | None,
    now: dt.datetime,
) -> Version:
    """Turn a fully received session into an in-review or published version, or refuse.

    Committing a committed session again (its answer was lost) returns the same version.
    """
    version = db.get(Version, upload.version_id)
    assert version is not None
    if upload.state == "committed":
        return version
    require_open(upload, now)
    rows = session_files(db, upload)
    for row in rows:
        finalize_file(db, blobs, row, now)
    commit_early(db, "finalized files are kept even when validation refuses the version")
    _require_complete(db, blobs, rows)
    signed = publisher_signature is not None or publisher_key_id is not None
    if signed:
        _check_signature(db, upload, version, rows, publisher_signature, publisher_key_id)
    card, problems = validate_version(_entries(blobs, rows), max_file_size=max_file_size)
    if not problems and policies is not None:
        floor = check_floor(db, policies, version.model, version, rows, card)
        problems = floor.problems
        review_required = review_required or bool(floor.unknown_datasets)
    if card:
        problems = [*problems, *evaluation_policy.commit_problems(version.model.tier, card)]
    if problems:
        _refuse(db, blobs, upload, version, problems, actor=actor, now=now)
    card_text = _card_text(blobs, rows)
    try:
        # No storage call under the registry-wide lock (a hung S3 would hold it for every
        # publisher): the blobs were checked above; gc decides under this lock, keeping every
        # blob an open session lists and dropping the record of each blob it condemns, so
        # re-checking that the session is open and its blobs recorded suffices.
        serialize_writes(db)
        db.refresh(upload)
        if upload.state == "committed":  # a repeated commit won the lock first
            db.refresh(version)
            return version
        require_open(upload, now)
        _require_recorded(db, rows)
        reserve_tag(db, version)  # also against versions of this tag waiting for review
        for row in rows:
            db.add(File(version_id=version.id, path=row.path, size=row.size, sha256=row.sha256))
        version.card_data = card
        version.card_text = card_text
        version.validation_report = []
        version.submitted_at = now
        if signed:
            version.publisher_signature = publisher_signature
            version.publisher_key_id = publisher_key_id
        else:
            version.manifest = None  # an unsigned version is sealed when it is published
        upload.state = "committed"
        db.flush()
        if review_required:
            version.state = "in-review"
            record_event(
                db,
                "version:submit",
                actor=actor,
                target=f"{version.model.repo_id} version {version.id}",
                model_id=version.model_id,
                version_id=version.id,
                details={"tag": version.requested_tag, "files": len(rows)},
                now=now,
            )
        else:
            publish_version(db, version, actor=actor, now=now, signer=signer())
        db.flush()
    except IntegrityError:
        db.rollback()
        raise Conflict(
            f"{version.model.repo_id}: another commit took tag {version.requested_tag!r} or "
            "this session first; reload the session to see its state."
        ) from None
    return version


def reserve_tag(db: Session, version: Version) -> None:
    """Refuse a tag that names a published version or one already waiting for review.

    Callers hold ``serialize_writes``; the partial unique index on in-review versions'
    tags is the database's own guarantee behind this check.
    """
    tag = version.requested_tag
    if tag is None:
        return
    taken = db.scalar(select(Tag.id).where(Tag.model_id == version.model_id, Tag.name == tag))
    waiting = db.scalar(
        select(Version.id).where(
            Version.model_id == version.model_id,
            Version.requested_tag == tag,
            Version.state == "in-review",
            Version.id != version.id,
        )
    )
    if taken is not None or waiting is not None:
        where = (
            "names a published version"
            if taken is not None
            else f"is reserved by version {waiting}, which waits for review"
        )
        raise Conflict(
            f"Tag {tag!r} of {version.model.repo_id} {where}; push this version with another tag."
        )


def _require_complete(db: Session, blobs: BlobStore, rows: list[UploadFile]) -> None:
    missing = [
        row for row in rows if row.complete and not stored_as_declared(blobs, row.sha256, row.size)
    ]
    for row in missing:  # collected meanwhile (e.g. by gc): the bytes must come again
        row.complete = False
    incomplete = [row for row in rows if not row.complete]
    if incomplete:
        raise _incomplete(incomplete, lambda row: received(blobs, row), keep_changes=bool(missing))


def _require_recorded(db: Session, rows: list[UploadFile]) -> None:
    """Under the lock, from the database alone: every file's blob is still recorded.

    gc drops a blob's record in the locked decision that condemns its bytes, then deletes
    them after letting go of the lock; a file whose record is gone has to be sent again.
    """
    shas = {row.sha256 for row in rows}
    recorded = set(db.scalars(select(Blob.sha256).where(Blob.sha256.in_(shas)))) if shas else set()
    condemned = [row for row in rows if row.sha256 not in recorded]
    for row in condemned:
        row.complete = False
    if condemned:
        raise _incomplete(condemned, lambda row: 0, keep_changes=True)


def _incomplete(
    rows: list[UploadFile], received_of: Callable[[UploadFile], int], *, keep_changes: bool
) -> UploadIncomplete:
    listed = ", ".join(row.path for row in rows[:10])
    return UploadIncomplete(
        f"{len(rows)} file(s) have not fully arrived: {listed}. HEAD each upload_url "
        "to see how many bytes were received and send the rest.",
        details={
            "incomplete": [
                {"path": row.path, "size": row.size, "received": received_of(row)} for row in rows
            ]
        },
        keep_changes=keep_changes,  # the files to send again stay marked
    )


def _check_signature(
    db: Session,
    upload: UploadSession,
    version: Version,
    rows: list[UploadFile],
    signature: str | None,
    kid: str | None,
) -> None:
    if not version.manifest:
        raise institution_keys.SignatureRejected(
            "Nothing was signed yet: GET /api/v1/uploads/<id>/manifest-preview, sign those exact "
            "bytes, then commit with publisher_signature and publisher_key_id."
        )
    body = seal_manifest(version, list(rows), manifest_time(version.manifest))
    institution_keys.check_publisher_signature(db, upload.institution_id, kid, signature, body)


def _entries(blobs: BlobStore, rows: list[UploadFile]) -> dict[str, FileEntry]:
    def opener(sha256: str) -> Callable[[], BinaryIO]:
        return lambda: blobs.open(sha256)

    return {row.path: FileEntry(row.path, row.size, opener(row.sha256)) for row in rows}


def _card_text(blobs: BlobStore, rows: list[UploadFile]) -> str:
    card = next((row for row in rows if row.path == CARD_PATH), None)
    if card is None:
        return ""
    with blobs.open(card.sha256, 0, MAX_CARD_TEXT) as stream:
        return stream.read(MAX_CARD_TEXT).decode("utf-8", errors="replace")


def _refuse(
    db: Session,
    blobs: BlobStore,
    upload: UploadSession,
    version: Version,
    problems: list[Problem],
    *,
    actor: User | None,
    now: dt.datetime,
) -> None:
    """Close the session with the validation report; nothing of it becomes visible."""
    serialize_writes(db)
    db.refresh(upload)
    if upload.state == "open":
        version.validation_report = [p.to_dict() for p in problems]
        abort_session(
            db,
            blobs,
            upload,
            actor=actor,
            now=now,
            reason=f"validation failed with {len(problems)} problem(s)",
            discard=False,  # under the lock; every file is complete anyway (nothing staged)
        )
    shown = "; ".join(str(p) for p in problems[:10])
    more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
    raise ValidationFailed(
        f"The version was refused, nothing was published: {shown}{more}. Fix the files and "
        "upload them in a new session (files already received are not needed again).",
        details={"problems": [p.to_dict() for p in problems]},
        keep_changes=True,  # the closed session and its report are the outcome
    )
