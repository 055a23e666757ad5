"""Answers of the credential, training and DUA routes."""

from __future__ import annotations

from registry.api.schemas import Answer, Body


class Dua(Answer):
    id: str
    title: str
    url: str | None
    sha256: str
    text: str


class Signature(Answer):
    dua: str
    full_name: str
    signed_at: str | None
    text_sha256: str | None


class SignatureBody(Body):
    full_name: str = ""
    text_sha256: str | None = None


class ApplicationBody(Body):
    """An application to become a credentialed researcher (the service checks each value)."""

    full_name: str | None = None
    affiliation: str | None = None
    job_title: str | None = None
    reference_name: str | None = None
    reference_email: str | None = None
    research_summary: str | None = None


class ReviewBody(Body):
    """A reviewer's decision (accept, reject or revoke; the service names the choices)."""

    decision: str = ""
    reason: str = ""


class TrainingBody(Body):
    """A training: JSON with ``verification_url``, or multipart with these fields as form
    fields and the certificate file as ``certificate``; the service checks the values."""

    kind: str = ""
    completed_on: str | None = None  # YYYY-MM-DD
    verification_url: str | None = None
