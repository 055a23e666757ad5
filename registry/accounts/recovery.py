"""Forgotten passwords: a mailed single-use link (an hour), the same answer for every
address, and a reset that ends every session of the account."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update
from sqlalchemy.orm import Session

from registry.accounts.addresses import AddressRefused, normalize_email
from registry.accounts.links import issue_link, links_sent, open_link, placeholder, use_links
from registry.accounts.passwords import hash_password, password_problems
from registry.accounts.services import find_user_by_email
from registry.accounts.tokens import list_tokens, revoke_token
from registry.accounts.validation import Problems
from registry.audit.services import record_event
from registry.config import Settings
from registry.mail.outbox import enqueue_mail
from registry.mail.site import Site
from registry.models import AccessRequest, CredentialApplication, Training, User

RESET_PATH = "/password/reset"
FORGOT_PATH = "/password/forgot"
UNPROVEN_REASON = (
    "Closed when a password reset proved this address: it was made before the address was "
    "verified, perhaps by someone else. Submit it again if it is yours."
)
# Per account: more requests within the hour are answered the same way but send nothing.
MAX_RESETS_PER_HOUR = 3
ANSWER = (
    "If an account uses that address, a link to choose a new password is on its way; it works "
    "once, within an hour. Nothing arrived? Check the spelling and your spam folder."
)


def request_reset(db: Session, email: str, settings: Settings, *, now: dt.datetime) -> str:
    """Mail a reset link if the address has an account; always the same ``ANSWER``."""
    try:
        address = normalize_email(email if isinstance(email, str) else "")
    except AddressRefused:
        address = ""
    user = find_user_by_email(db, address) if address else None
    if user is None or not user.is_active:
        record_event(
            db,
            "account:password-reset-request",
            target=f"user:{(address or str(email))[:300]}",
            details={"sent": False, "reason": "unknown-account" if user is None else "disabled"},
            now=now,
        )
        return ANSWER
    if links_sent(db, user, "reset", since=now - dt.timedelta(hours=1)) >= MAX_RESETS_PER_HOUR:
        record_event(
            db,
            "account:password-reset-request",
            target=f"user:{user.email}",
            details={"sent": False, "reason": "rate-limited"},
            now=now,
        )
        return ANSWER
    site = Site.of(settings)
    link = issue_link(db, user, "reset", email=user.email, secret_key=settings.secret_key, now=now)
    enqueue_mail(
        db,
        site,
        to=user.email,
        subject="Choose a new password",
        text=(
            f"Someone asked to reset the password of {user.email} on {site.name}.\n\n"
            "Choose a new password within an hour here (the link works once):\n\n"
            f"    {site.link(f'{RESET_PATH}/{placeholder(link)}')}\n\n"
            "Setting it logs the account out everywhere. If you did not ask, ignore this "
            "mail: your password stays as it is."
        ),
        topic="password-reset",
        user_id=user.id,
        optional=False,
        now=now,
    )
    record_event(
        db,
        "account:password-reset-request",
        actor=user,
        target=f"user:{user.email}",
        details={"sent": True},
        now=now,
    )
    return ANSWER


def reset_password(
    db: Session, token: str, new_password: str, settings: Settings, *, now: dt.datetime
) -> User:
    """Set the password from a reset link; every session of the account ends."""
    site = Site.of(settings)
    link = open_link(db, token, "reset", again=f"ask for a new one at {FORGOT_PATH}", now=now)
    user = link.user
    problems = Problems()
    if not isinstance(new_password, str):
        problems.add("new_password", "is required")
        new_password = ""
    for problem in password_problems(new_password, user.email):
        problems.add("new_password", problem)
    problems.raise_if_any("Cannot reset the password")
    use_links(db, user, "reset", now=now)
    user.password_hash = hash_password(new_password)
    user.password_changed_at = now
    # Every session cookie of the account, in any browser, stops working.
    user.session_generation = (user.session_generation or 0) + 1
    proven_now = user.email_verified_at is None and link.email == user.email
    revoked = 0
    closed: dict[str, int] = {}
    if proven_now:
        user.email_verified_at = now  # the link reached the mailbox: the address is proven
        # Whoever held the account before its address was proven (a squatter who typed
        # someone else's address) made its tokens: none of them outlives the proof.
        for token in list_tokens(db, user):
            if token.revoked_at is None:
                revoke_token(db, token, actor=user, now=now)
                revoked += 1
        closed = close_unproven_requests(db, user, now=now)
    record_event(
        db,
        "account:password-reset",
        actor=user,
        target=f"user:{user.email}",
        details={"proved_address": proven_now, "tokens_revoked": revoked, "closed": closed}
        if proven_now
        else None,
        now=now,
    )
    tokens_line = (
        f"{'The API token' if revoked == 1 else f'The {revoked} API tokens'} made before the "
        f"address was verified {'was' if revoked == 1 else 'were'} revoked; make new ones"
        if revoked
        else "API tokens keep working; review them"
    )
    waiting = sum(closed.values())
    closed_line = (
        f"{'1 waiting request' if waiting == 1 else f'{waiting} waiting requests'} "
        f"(credential application, training or access request) made before the address was "
        f"verified {'was' if waiting == 1 else 'were'} closed; submit again what is yours.\n\n"
        if waiting
        else ""
    )
    enqueue_mail(
        db,
        site,
        to=user.email,
        subject="Your password was changed",
        text=(
            f"The password of {user.email} on {site.name} was just reset with a mailed link, "
            f"and every session of the account was logged out. {tokens_line} at "
            f"{site.link('/account/tokens')}.\n\n{closed_line}"
            f"If this was not you, reset it again at {site.link(FORGOT_PATH)} and tell a "
            "registry administrator."
        ),
        topic="password-changed",
        user_id=user.id,
        optional=False,
        now=now,
    )
    db.flush()
    return user


def close_unproven_requests(db: Session, user: User, *, now: dt.datetime) -> dict[str, int]:
    """Reject what the account left waiting before its address was proven; counts by kind.

    A squatter who registered someone else's address could apply, submit a training or ask
    for access in that name; once the owner takes the account over by a reset, a reviewer
    would see those under a verified address. They are closed with a reason the owner sees.
    """
    closed = {}
    for name, table, decided_at in (
        ("credentials", CredentialApplication, "decided_at"),
        ("trainings", Training, "reviewed_at"),
        ("access_requests", AccessRequest, "decided_at"),
    ):
        closed[name] = db.execute(
            update(table)
            .where(table.user_id == user.id, table.status == "pending")
            .values(status="rejected", reason=UNPROVEN_REASON, **{decided_at: now})
            .execution_options(synchronize_session="fetch")
        ).rowcount
    return closed
