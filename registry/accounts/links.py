"""Single-use, expiring links sent by mail; only the sha256 of each token is stored.

The token is never written anywhere, not even into the queued mail: the row keeps a random
nonce, the token is HMAC-SHA256(``REGISTRY_SECRET_KEY``, nonce), and the queued mail holds a
placeholder (``[[link:17]]``) that the mail worker fills in as it sends. Someone who reads the
database (a backup, the outbox) but not the secret key can open no account with it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from registry.errors import RegistryError
from registry.models import EmailLink, User

LIFETIMES = {
    "verify": dt.timedelta(hours=48),
    "change-email": dt.timedelta(hours=24),
    "reset": dt.timedelta(hours=1),
}
PLACEHOLDER = re.compile(r"\[\[link:(\d{1,12})\]\]")
_HMAC_CONTEXT = b"roentgen-registry/email-link/v1:"


class LinkInvalid(RegistryError):
    """The link is unknown, used or expired; the message says how to get a new one."""

    status, code = 400, "InvalidLink"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def link_token(nonce: str, secret_key: str) -> str:
    """The token of the link with ``nonce`` (only the mail worker and the tests need it)."""
    digest = hmac.new(secret_key.encode(), _HMAC_CONTEXT + nonce.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode("ascii").rstrip("=")


def issue_link(
    db: Session, user: User, purpose: str, *, email: str, secret_key: str, now: dt.datetime
) -> EmailLink:
    """A new link for ``purpose`` to ``email``; put ``placeholder(link)`` into the mail."""
    nonce = secrets.token_hex(16)
    link = EmailLink(
        user_id=user.id,
        purpose=purpose,
        email=email,
        nonce=nonce,
        token_hash=_hash(link_token(nonce, secret_key)),
        created_at=now,
        expires_at=now + LIFETIMES[purpose],
    )
    db.add(link)
    db.flush()
    return link


def placeholder(link: EmailLink) -> str:
    """What a queued mail holds where the token goes."""
    return f"[[link:{link.id}]]"


def fill_links(db: Session, text: str, secret_key: str) -> str:
    """``text`` with each placeholder replaced by its token (as the mail leaves)."""

    def token(match: re.Match[str]) -> str:
        link = db.get(EmailLink, int(match.group(1)))
        return link_token(link.nonce, secret_key) if link is not None else "(link withdrawn)"

    return PLACEHOLDER.sub(token, text)


def open_link(db: Session, token: str, purpose: str, *, again: str, now: dt.datetime) -> EmailLink:
    """The unused, unexpired link of ``token``; else ``LinkInvalid`` ("get a new one at …")."""
    link = None
    if isinstance(token, str) and 20 <= len(token) <= 100:
        link = db.scalar(
            select(EmailLink).where(
                EmailLink.token_hash == _hash(token), EmailLink.purpose == purpose
            )
        )
    if link is None:
        raise LinkInvalid(f"This link is not valid (mistyped or cut off?); {again}.")
    if link.used_at is not None:
        raise LinkInvalid(
            f"This link was already used on {link.used_at:%Y-%m-%d %H:%M} UTC; {again}."
        )
    if link.expires_at <= now:
        raise LinkInvalid(f"This link expired on {link.expires_at:%Y-%m-%d %H:%M} UTC; {again}.")
    return link


def use_links(db: Session, user: User, purpose: str, *, now: dt.datetime) -> None:
    """Spend every open link of ``user`` for ``purpose`` (the used one and any older ones)."""
    db.execute(
        update(EmailLink)
        .where(
            EmailLink.user_id == user.id,
            EmailLink.purpose == purpose,
            EmailLink.used_at.is_(None),
        )
        .values(used_at=now)
    )


def links_sent(db: Session, user: User, purpose: str, *, since: dt.datetime) -> int:
    """How many ``purpose`` links ``user`` was sent since ``since`` (for per-account limits)."""
    return (
        db.scalar(
            select(func.count(EmailLink.id)).where(
                EmailLink.user_id == user.id,
                EmailLink.purpose == purpose,
                EmailLink.created_at >= since,
            )
        )
        or 0
    )
