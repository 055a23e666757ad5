"""DUA signatures: typed full name, time and the sha256 of the text that was signed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry.access.policy import DuaSpec
from registry.access.requirements import require_verified_email
from registry.accounts.validation import Problems
from registry.audit.services import record_event
from registry.errors import Conflict
from registry.models import DuaSignature, User


def sign(
    db: Session,
    user: User,
    dua: DuaSpec,
    *,
    full_name: str,
    text_sha256: str | None = None,
    now: dt.datetime,
) -> tuple[DuaSignature, bool]:
    """Sign ``dua`` (idempotent); returns the signature and whether it is new."""
    problems = Problems()
    name = problems.text("full_name", full_name, max_length=200)
    problems.raise_if_any("Cannot sign the DUA")
    if text_sha256 is not None and not isinstance(text_sha256, str):
        problems.add("text_sha256", "must be a string")
    problems.raise_if_any("Cannot sign the DUA")
    if text_sha256 and text_sha256.lower() != dua.sha256:
        raise Conflict(
            f"The text of DUA {dua.id} changed since you read it; read it again and sign "
            "the current text."
        )
    existing = _existing(db, user, dua)
    if existing is not None:
        return existing, False
    # A signature binds the person the address names: whoever merely typed it cannot sign.
    require_verified_email(db, user, f"{user.email} cannot sign {dua.id}")
    signature = DuaSignature(
        user_id=user.id, dua=dua.id, full_name=name, text_sha256=dua.sha256, signed_at=now
    )
    try:
        with db.begin_nested():
            db.add(signature)
    except IntegrityError:  # signed at the same moment by another request
        return _existing(db, user, dua), False
    record_event(
        db,
        "dua:sign",
        actor=user,
        target=f"dua:{dua.id}",
        details={"full_name": name, "text_sha256": dua.sha256},
        now=now,
    )
    db.flush()
    return signature, True


def _existing(db: Session, user: User, dua: DuaSpec) -> DuaSignature | None:
    return db.scalar(
        select(DuaSignature).where(DuaSignature.user_id == user.id, DuaSignature.dua == dua.id)
    )


def signatures(db: Session, user: User) -> Sequence[DuaSignature]:
    return db.scalars(
        select(DuaSignature).where(DuaSignature.user_id == user.id).order_by(DuaSignature.id)
    ).all()
