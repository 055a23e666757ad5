"""Proving an address: the link mailed at registration (and on request), changing the
address (the new one is proven before it replaces the old one, which is told)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from registry.access import fixes
from registry.accounts.addresses import email_key
from registry.accounts.links import issue_link, links_sent, open_link, placeholder, use_links
from registry.accounts.passwords import verify_password
from registry.accounts.services import find_user_by_email
from registry.accounts.validation import Problems
from registry.audit.services import record_event
from registry.config import Settings
from registry.errors import Conflict, Forbidden, TooManyRequests
from registry.mail.outbox import enqueue_mail
from registry.mail.site import Site
from registry.models import EmailLink, User

VERIFY_PATH = "/account/verify"
CHANGE_PATH = "/account/email/confirm"
# Per account: a mailbox is not flooded, whoever keeps pressing "resend".
MAX_LINKS_PER_HOUR = 5


def _rate_limit(db: Session, user: User, purpose: str, now: dt.datetime) -> None:
    if links_sent(db, user, purpose, since=now - dt.timedelta(hours=1)) >= MAX_LINKS_PER_HOUR:
        raise TooManyRequests(
            f"{MAX_LINKS_PER_HOUR} links were sent to this account in the last hour; use the "
            "newest one, or wait an hour and ask again.",
            headers={"Retry-After": "3600"},
        )


def send_verification(
    db: Session, user: User, settings: Settings, *, now: dt.datetime
) -> EmailLink:
    """Mail ``user`` a link that proves their address (refused once it is verified)."""
    site = Site.of(settings)
    if user.email_verified_at is not None:
        raise Conflict(f"{user.email} is already verified.")
    _rate_limit(db, user, "verify", now)
    link = issue_link(db, user, "verify", email=user.email, secret_key=settings.secret_key, now=now)
    hours = int((link.expires_at - now).total_seconds() // 3600)
    enqueue_mail(
        db,
        site,
        to=user.email,
        subject="Verify your email address",
        text=(
            f"Someone (hopefully you) created an account for {user.email} on {site.name}.\n\n"
            f"Confirm that this address is yours by opening this link within {hours} hours:\n\n"
            f"    {site.link(f'{VERIFY_PATH}/{placeholder(link)}')}\n\n"
            "Until then the account can sign in, but no institution role, credential, DUA "
            "signature or access above the open tier attaches to it.\n"
            "If you did not create it, do not open the link: someone else typed your address. "
            "Ignore this mail, or take the account over by choosing a new password at "
            f"{site.link('/password/forgot')} (that logs the other person out)."
        ),
        topic="verify-email",
        user_id=user.id,
        optional=False,
        now=now,
    )
    record_event(db, "account:verification-sent", actor=user, target=f"user:{user.email}", now=now)
    return link


def verify_email(db: Session, token: str, *, now: dt.datetime) -> User:
    """Mark the address of the link's account verified (the link works once)."""
    again = f"send a new one from {fixes.VERIFY_EMAIL}"
    link = open_link(db, token, "verify", again=again, now=now)
    user = link.user
    if link.email != user.email:
        raise Conflict(
            f"This link was sent to {link.email}, which is no longer the account's address."
        )
    use_links(db, user, "verify", now=now)
    if user.email_verified_at is None:
        user.email_verified_at = now
        record_event(db, "account:email-verify", actor=user, target=f"user:{user.email}", now=now)
    db.flush()
    return user


def mark_verified(db: Session, user: User, *, actor: User | None, now: dt.datetime) -> User:
    """An operator vouches for the address (``create-admin``); audited as such."""
    if user.email_verified_at is None:
        user.email_verified_at = now
        record_event(
            db,
            "account:email-verify",
            actor=actor or user,
            target=f"user:{user.email}",
            details={"by": "operator"},
            now=now,
        )
        db.flush()
    return user


def request_email_change(
    db: Session,
    user: User,
    settings: Settings,
    *,
    new_email: str,
    password: str,
    now: dt.datetime,
) -> EmailLink:
    """Mail a confirmation link to the new address and tell the old one; nothing changes
    until the link is opened."""
    site = Site.of(settings)
    problems = Problems()
    address = problems.email("email", new_email)
    problems.raise_if_any("Cannot change the address")
    if not verify_password(user.password_hash, password if isinstance(password, str) else ""):
        raise Forbidden("The password is wrong.")
    if user.email_key == email_key(address):
        raise Conflict(f"{address} is already this account's address.")
    if find_user_by_email(db, address) is not None:
        raise Conflict(f"{address} already belongs to another account.")
    _rate_limit(db, user, "change-email", now)
    link = issue_link(
        db, user, "change-email", email=address, secret_key=settings.secret_key, now=now
    )
    enqueue_mail(
        db,
        site,
        to=address,
        subject="Confirm your new email address",
        text=(
            f"The account {user.email} on {site.name} asked to use {address} from now on.\n\n"
            f"Confirm by opening this link within 24 hours:\n\n"
            f"    {site.link(f'{CHANGE_PATH}/{placeholder(link)}')}\n\n"
            "If you did not ask for this, ignore this mail."
        ),
        topic="change-email",
        user_id=user.id,
        optional=False,
        now=now,
    )
    enqueue_mail(
        db,
        site,
        to=user.email,
        subject="Your email address is being changed",
        text=(
            f"Someone signed in to your account on {site.name} and asked to change its "
            f"address from {user.email} to {address}. The change happens only when the link "
            f"sent to {address} is opened.\n\n"
            f"If this was not you, change your password now at {site.link('/account/password')} "
            f"(or reset it at {site.link('/password/forgot')}): that also cancels the change."
        ),
        topic="email-change-notice",
        user_id=user.id,
        optional=False,
        now=now,
    )
    record_event(
        db,
        "account:email-change-request",
        actor=user,
        target=f"user:{user.email}",
        details={"new_email": address},
        now=now,
    )
    return link


def confirm_email_change(db: Session, token: str, *, now: dt.datetime) -> User:
    """Switch the account to the proven new address."""
    link = open_link(
        db, token, "change-email", again="ask for the change again at /account/email", now=now
    )
    user = link.user
    if link.created_at < (user.password_changed_at or link.created_at):
        raise Conflict("The password was changed after this request; ask for the change again.")
    if find_user_by_email(db, link.email) is not None:
        raise Conflict(f"{link.email} already belongs to another account.")
    before = user.email
    use_links(db, user, "change-email", now=now)
    use_links(db, user, "verify", now=now)
    user.email = link.email
    user.email_key = email_key(link.email)
    user.email_verified_at = now
    record_event(
        db,
        "account:email-change",
        actor=user,
        target=f"user:{user.email}",
        details={"previous_email": before},
        now=now,
    )
    db.flush()
    return user
