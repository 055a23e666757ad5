"""Objects several answers share: a user, a membership, a token, a missing requirement."""

from __future__ import annotations

from typing import Any

from registry.api.schemas import Answer


class Membership(Answer):
    slug: str
    name: str
    role: str
    user_id: int


class User(Answer):
    id: int
    email: str
    email_verified: bool
    email_verified_at: str | None
    display_name: str
    is_registry_admin: bool
    is_active: bool
    created_at: str | None
    terms_accepted_at: str | None
    institution: Membership | None


class Token(Answer):
    id: int
    name: str
    prefix: str
    scope: str
    created_at: str | None
    expires_at: str | None
    last_used_at: str | None
    revoked_at: str | None


class Missing(Answer):
    """One unmet access requirement, with where to fix it."""

    requirement: str
    message: str
    fix_url: str | None = None


class CredentialApplication(Answer):
    id: int
    user: str
    full_name: str
    affiliation: str
    job_title: str
    reference_name: str
    reference_email: str
    research_summary: str
    status: str
    reason: str | None
    created_at: str | None
    decided_at: str | None


class Certificate(Answer):
    filename: str | None
    content_type: str | None
    sha256: str
    url: str


class Training(Answer):
    id: int
    user: str
    kind: str
    status: str
    reason: str | None
    completed_on: str | None
    verification_url: str | None
    certificate: Certificate | None
    valid_until: str | None
    created_at: str | None
    reviewed_at: str | None


class DuaSignature(Answer):
    dua: str
    signed_at: str | None
    text_sha256: str | None


class Acknowledged(Answer):
    """A plain acknowledgement with a sentence for the user."""

    message: str


JSON = dict[str, Any]
