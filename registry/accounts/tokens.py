"""API tokens: ``rgr_`` + 256 random bits, shown once; only their sha256 is stored."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Sequence

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, joinedload

from registry.access import fixes
from registry.accounts.validation import Problems
from registry.audit.services import record_event
from registry.db import commit_early
from registry.errors import Unauthorized
from registry.models import ApiToken, User
from registry.models.accounts import TOKEN_SCOPES

TOKEN_PREFIX = "rgr_"
SECRET_BYTES = 32
VISIBLE_CHARS = 12  # "rgr_" + 8 characters: enough to recognise a token in lists and logs
TOUCH_EVERY = dt.timedelta(minutes=1)


def token_hash(token: str) -> str:
    """sha256 of the whole token; a 256-bit random secret needs no slow hash."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    db: Session,
    user: User,
    *,
    name: str,
    scope: str,
    expires_in_days: int | None,
    default_days: int,
    max_days: int,
    now: dt.datetime,
    parent: ApiToken | None = None,
) -> tuple[ApiToken, str]:
    """Create a token; returns the row and the plaintext (shown once, never stored).

    A token minted with another token (``parent``) expires no later than it and stops
    working as soon as it is revoked or expires.
    """
    problems = Problems()
    name = problems.text("name", name, max_length=100)
    if scope not in TOKEN_SCOPES:
        problems.add("scope", f"must be one of {', '.join(TOKEN_SCOPES)}")
    days = default_days if expires_in_days is None else expires_in_days
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= max_days:
        problems.add("expires_in_days", f"must be a whole number of days from 1 to {max_days}")
    problems.raise_if_any("Cannot create the token")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    token = ApiToken(
        user_id=user.id,
        name=name,
        prefix=plaintext[:VISIBLE_CHARS],
        token_hash=token_hash(plaintext),
        scope=scope,
        created_at=now,
        expires_at=now + dt.timedelta(days=days),
        parent_id=parent.id if parent is not None else None,
    )
    if parent is not None:
        token.expires_at = min(token.expires_at, parent.expires_at)
    db.add(token)
    db.flush()
    record_event(
        db,
        "token:create",
        actor=user,
        target=f"token:{token.prefix}",
        details={
            "token_id": token.id,
            "name": name,
            "scope": scope,
            "expires_at": token.expires_at.isoformat(),
        },
        now=now,
    )
    db.flush()
    return token, plaintext


# Token, user and membership in one query, built once: this runs on every authenticated request.
_TOKEN_BY_HASH = (
    select(ApiToken)
    .where(ApiToken.token_hash == bindparam("hash"))
    .options(joinedload(ApiToken.user).joinedload(User.membership))
)


def authenticate_token(db: Session, presented: str, now: dt.datetime) -> ApiToken:
    """The live token matching ``presented``; otherwise ``Unauthorized`` saying why."""
    where = f"create a new one at {fixes.TOKENS}"
    if not presented.startswith(TOKEN_PREFIX):
        raise Unauthorized(
            "The Authorization header does not carry a registry API token (they start with "
            f"'{TOKEN_PREFIX}'; unset HF_TOKEN if it holds another hub's token); {where}"
        )
    token = db.scalar(_TOKEN_BY_HASH, {"hash": token_hash(presented)})
    if token is None or not hmac.compare_digest(token.token_hash, token_hash(presented)):
        raise Unauthorized(f"Invalid API token: it is not known to this registry; {where}")
    label = f"API token {token.prefix}... ({token.name})"
    if token.revoked_at is not None:
        raise Unauthorized(f"{label} was revoked on {token.revoked_at:%Y-%m-%d}; {where}")
    if token.expires_at <= now:
        raise Unauthorized(f"{label} expired on {token.expires_at:%Y-%m-%d}; {where}")
    if not token.user.is_active:
        raise Unauthorized(f"{label} belongs to a disabled account")
    _require_live_ancestors(db, token, label, now, where)
    return token


MAX_TOKEN_DEPTH = 16


def _require_live_ancestors(
    db: Session, token: ApiToken, label: str, now: dt.datetime, where: str
) -> None:
    """A token minted by a token dies with it (and with every token above that)."""
    current = token
    for _ in range(MAX_TOKEN_DEPTH):
        if current.parent_id is None:
            return
        parent = db.get(ApiToken, current.parent_id)
        if parent is None:
            break
        name = f"API token {parent.prefix}... ({parent.name})"
        if parent.revoked_at is not None:
            raise Unauthorized(f"{label} was minted by {name}, which was revoked; {where}")
        if parent.expires_at <= now:
            raise Unauthorized(f"{label} was minted by {name}, which expired; {where}")
        current = parent
    raise Unauthorized(f"{label} descends from a token that no longer exists; {where}")


def touch(db: Session, token: ApiToken, now: dt.datetime) -> None:
    """Record the token's last use (at most once a minute, to spare the database)."""
    if token.last_used_at is not None and now - token.last_used_at < TOUCH_EVERY:
        return
    db.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
    # First thing in a request, so nothing else is committed with it; waiting for the end
    # would hold the token's row lock for the whole request of every caller sharing it.
    commit_early(db, "token last-used stamp")
    token.last_used_at = now


def list_tokens(db: Session, user: User) -> Sequence[ApiToken]:
    return db.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())
    ).all()


def revoke_token(
    db: Session,
    token: ApiToken,
    *,
    actor: User,
    now: dt.datetime,
) -> ApiToken:
    """Revoke ``token`` at once (idempotent)."""
    if token.revoked_at is None:
        token.revoked_at = now
        record_event(
            db,
            "token:revoke",
            actor=actor,
            target=f"token:{token.prefix}",
            details={"token_id": token.id, "owner": token.user.email},
            now=now,
        )
        db.flush()
    return token
