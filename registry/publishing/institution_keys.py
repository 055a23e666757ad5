"""Institutions' own Ed25519 public keys, and checking publisher signatures with them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.audit.services import record_event
from registry.errors import BadRequest, Conflict, NotFound
from registry.models import Institution, InstitutionKey, User
from registry.publishing import signing


class SignatureRejected(BadRequest):
    """A publisher signature does not verify against the institution's registered keys."""

    code = "SignatureRejected"


def find_institution(db: Session, slug: str) -> Institution:
    institution = db.scalar(select(Institution).where(Institution.slug == slug))
    if institution is None:
        raise NotFound(f"No institution {slug!r}.")
    return institution


def list_keys(db: Session, institution: Institution) -> list[InstitutionKey]:
    """The institution's keys, revoked ones included, newest first."""
    return list(
        db.scalars(
            select(InstitutionKey)
            .where(InstitutionKey.institution_id == institution.id)
            .order_by(InstitutionKey.id.desc())
        )
    )


def register_key(
    db: Session,
    institution: Institution,
    public_key: str,
    *,
    actor: User | None,
    now: dt.datetime,
) -> InstitutionKey:
    """Register a base64 raw Ed25519 public key for the institution's publisher signatures."""
    try:
        raw = signing.public_raw(signing.decode_public_key(public_key))
    except ValueError as error:
        raise BadRequest(str(error)) from None
    kid = signing.key_id(raw)
    if db.scalar(select(InstitutionKey).where(InstitutionKey.key_id == kid)) is not None:
        raise Conflict(f"Key {kid} is already registered.")
    key = InstitutionKey(
        institution_id=institution.id, key_id=kid, public_key=signing.b64(raw), created_at=now
    )
    db.add(key)
    record_event(
        db,
        "institution:key-register",
        actor=actor,
        target=f"{institution.slug}/{kid}",
        now=now,
    )
    db.flush()
    return key


def revoke_key(
    db: Session,
    institution: Institution,
    kid: str,
    *,
    actor: User | None,
    now: dt.datetime,
) -> InstitutionKey:
    """Stop accepting a key for new commits (signatures already made stay served)."""
    key = db.scalar(
        select(InstitutionKey).where(
            InstitutionKey.institution_id == institution.id, InstitutionKey.key_id == kid
        )
    )
    if key is None:
        raise NotFound(f"Institution {institution.slug} has no key {kid!r}.")
    if key.revoked_at is None:
        key.revoked_at = now
        record_event(
            db,
            "institution:key-revoke",
            actor=actor,
            target=f"{institution.slug}/{kid}",
            now=now,
        )
        db.flush()
    return key


def check_publisher_signature(
    db: Session, institution_id: int, kid: str | None, signature: str | None, data: bytes
) -> None:
    """Refuse unless ``signature`` over ``data`` verifies with an active key of the institution."""
    if not signature or not kid:
        raise SignatureRejected(
            "A publisher signature needs both publisher_signature and publisher_key_id."
        )
    key = db.scalar(select(InstitutionKey).where(InstitutionKey.key_id == kid))
    if key is None or key.institution_id != institution_id:
        raise SignatureRejected(
            f"Key {kid!r} is not registered for this model's institution; register it with "
            "POST /api/v1/institutions/<slug>/keys or sign with a registered key."
        )
    if key.revoked_at is not None:
        raise SignatureRejected(f"Key {kid} was revoked on {key.revoked_at:%Y-%m-%d}.")
    if not signing.verify(key.public_key, signature, data):
        raise SignatureRejected(
            f"The publisher signature does not verify with key {kid} over the manifest: sign "
            "the exact bytes from GET /api/v1/uploads/<id>/manifest-preview."
        )
