"""Request bodies of the version review, withdrawal and institution-key routes."""

from __future__ import annotations

from pydantic import Field

from registry.api.schemas import Body

MAX_CARD_CHARS = 5 * 1024 * 1024  # the card-fields route's body limit (bodies.ROUTE_LIMITS) fits it


class ReasonBody(Body):
    """Rejecting or withdrawing a version: the reason is shown to the publisher (or everyone)."""

    reason: str


class PublicKeyBody(Body):
    """An institution's Ed25519 public key: base64 of its 32 raw bytes."""

    public_key: str


class CommitBody(Body):
    """Committing an upload session; an empty body commits without a publisher signature."""

    publisher_signature: str | None = Field(None, description="base64 Ed25519 signature")
    publisher_key_id: str | None = None


class CardTextBody(Body):
    """The web upload page sends a picked README.md to learn its front matter."""

    text: str = Field("", max_length=MAX_CARD_CHARS)
