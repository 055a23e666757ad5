"""Training certificates (a file in the blob store, or a verification URL), reviewed by
admins; ``valid_until`` follows the policy's validity period."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.access.policy import TrainingSpec
from registry.access.requirements import require_verified_email
from registry.accounts.validation import MAX_ID, Problems
from registry.audit.services import record_event
from registry.errors import Conflict, NotFound, PayloadTooLarge
from registry.models import Training, User
from registry.storage import BlobStore

MAX_CERTIFICATE_BYTES = 10 * 1024 * 1024
# Content types we accept, each with the bytes such a file starts with.
CERTIFICATE_TYPES = {
    "application/pdf": b"%PDF-",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/jpeg": b"\xff\xd8\xff",
}


def submit(
    db: Session,
    blobs: BlobStore,
    user: User,
    spec: TrainingSpec | None,
    *,
    kind: str,
    completed_on: str | None,
    verification_url: str | None = None,
    certificate: BinaryIO | None = None,
    filename: str = "",
    now: dt.datetime,
) -> Training:
    """Record a certificate for review; a new one may replace an expired one at any time."""
    problems = Problems()
    if spec is None:
        problems.add("kind", f"unknown training {kind!r}")
    completed = _date(problems, completed_on, now)
    url = problems.text("verification_url", verification_url, max_length=2000, required=False)
    if url and not url.startswith("https://"):
        problems.add("verification_url", "must be an https:// URL")
    if bool(url) == (certificate is not None):
        problems.add("certificate", "send either a certificate file or a verification_url")
    data, content_type = b"", ""
    if certificate is not None:
        data = certificate.read(MAX_CERTIFICATE_BYTES + 1)
        if len(data) > MAX_CERTIFICATE_BYTES:
            raise PayloadTooLarge(
                f"The certificate is larger than {MAX_CERTIFICATE_BYTES // 2**20} MiB."
            )
        content_type = next(
            (t for t, magic in CERTIFICATE_TYPES.items() if data.startswith(magic)), ""
        )
        if not content_type:
            problems.add("certificate", "must be a PDF, PNG or JPEG file")
    problems.raise_if_any("Cannot submit the training")
    training = Training(
        user_id=user.id,
        kind=kind,
        completed_on=completed,
        verification_url=url or None,
        created_at=now,
    )
    if certificate is not None:
        info = blobs.put_stream(io.BytesIO(data))
        training.certificate_sha256 = info.sha256
        training.certificate_filename = (filename or "certificate").rsplit("/", 1)[-1][:255]
        training.certificate_content_type = content_type
    db.add(training)
    db.flush()
    record_event(
        db,
        "training:submit",
        actor=user,
        target=f"training:{training.id}",
        details={"kind": kind, "completed_on": completed.isoformat() if completed else None},
        now=now,
    )
    db.flush()
    return training


def _date(problems: Problems, value: str | None, now: dt.datetime) -> dt.date | None:
    if value in (None, ""):
        return None
    try:
        day = dt.date.fromisoformat(str(value))
    except ValueError:
        problems.add("completed_on", "must be a date like 2025-03-02")
        return None
    if day > now.date():
        problems.add("completed_on", "must not be in the future")
    return day


def get_training(db: Session, training_id: int) -> Training:
    training = db.get(Training, training_id) if training_id <= MAX_ID else None
    if training is None:
        raise NotFound(f"No training {training_id}.")
    return training


def list_trainings(
    db: Session, *, user: User | None = None, status: str | None = None
) -> Sequence[Training]:
    query = select(Training).order_by(Training.id.desc())
    if user is not None:
        query = query.where(Training.user_id == user.id)
    if status:
        query = query.where(Training.status == status)
    return db.scalars(query).all()


def review(
    db: Session,
    training: Training,
    spec: TrainingSpec | None,
    *,
    decision: str,
    reason: str = "",
    actor: User,
    now: dt.datetime,
) -> Training:
    """Accept (``valid_until`` = completion date, or today, + the policy's validity) or reject."""
    problems = Problems()
    if not isinstance(decision, str) or decision not in ("accept", "reject"):
        problems.add("decision", "must be accept or reject")
    reason = problems.text("reason", reason, max_length=2000, required=decision == "reject")
    problems.raise_if_any("Cannot record the review")
    if training.user_id == actor.id:
        raise Conflict("You cannot review your own training; ask another admin.")
    if training.status != "pending":
        raise Conflict(f"Training {training.id} was already {training.status}.")
    if decision == "accept":
        require_verified_email(
            db, training.user, f"The training of {training.user.email} cannot be accepted"
        )
        if spec is None:
            raise Conflict(f"Training kind {training.kind!r} is no longer in the policy.")
        start = (
            dt.datetime.combine(training.completed_on, dt.time(), dt.UTC)
            if training.completed_on is not None
            else now
        )
        valid_until = start + dt.timedelta(days=spec.valid_days)
        if valid_until <= now:
            raise Conflict(
                f"This certificate expired on {valid_until:%Y-%m-%d} ({spec.valid_days} days "
                "after completion); reject it and ask for a current one."
            )
        training.valid_until = valid_until
    training.status = "accepted" if decision == "accept" else "rejected"
    training.reason = reason
    training.reviewed_by_id = actor.id
    training.reviewed_at = now
    record_event(
        db,
        f"training:{decision}",
        actor=actor,
        target=f"user:{training.user.email}",
        details={
            "training_id": training.id,
            "kind": training.kind,
            "valid_until": training.valid_until.isoformat() if training.valid_until else None,
            "reason": reason,
        },
        now=now,
    )
    db.flush()
    return training
