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
