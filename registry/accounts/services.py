"""Registration, login, logout, password changes and terms of use."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from registry.accounts.addresses import AddressRefused, email_key, normalize_email
from registry.accounts.passwords import (
    hash_password,
    needs_rehash,
    password_problems,
    verify_password,
)
from registry.accounts.validation import Problems
from registry.audit.services import record_event
from registry.errors import Conflict, Forbidden, Unauthorized
from registry.models import User

LOGIN_FAILED = "Wrong email or password."
FORGOT = " Forgot it? Choose a new one at /password/forgot."


def find_user_by_email(db: Session, email: str) -> User | None:
    """The account of ``email``, compared as ``registry.accounts.addresses`` says."""
    try:
        address = normalize_email(email)
    except AddressRefused:
        return None
    return db.scalar(
        select(User).where(
            or_(
                User.email_key == email_key(address),
                # Accounts the identity migration found colliding keep no key of their own.
                and_(User.email_key.is_(None), User.email == address),
            )
        )
    )


def register_user(
    db: Session,
    *,
    email: str,
    password: str,
    display_name: str = "",
    accept_terms: bool = False,
    now: dt.datetime,
    is_registry_admin: bool = False,
) -> User:
    """Create an account (the caller has already rate-limited the request)."""
    problems = Problems()
    email = problems.email("email", email)
    if not isinstance(password, str):
        problems.add("password", "is required")
        password = ""
    for problem in password_problems(password, email):
        problems.add("password", problem)
    name = problems.text("display_name", display_name, max_length=200, required=False)
    if accept_terms is not True:
        problems.add("accept_terms", "must be true: read and accept the terms of use")
    problems.raise_if_any("Cannot register")
    if find_user_by_email(db, email) is not None:
        raise Conflict(f"An account for {email} already exists; log in at /login instead.")
    user = User(
        email=email,
        email_key=email_key(email),
        display_name=name or email.split("@", 1)[0],
        password_hash=hash_password(password),
        is_registry_admin=is_registry_admin,
        terms_accepted_at=now,
        created_at=now,
        password_changed_at=now,
    )
    db.add(user)
    db.flush()
    record_event(
        db,
        "account:register",
        actor=user,
        target=f"user:{user.email}",
        details={"registry_admin": is_registry_admin},
        now=now,
    )
    db.flush()
    return user


def authenticate(
    db: Session,
    email: str,
    password: str,
    *,
    now: dt.datetime,
) -> User:
    """The user with this email and password; records success and failure in the audit log."""
    email = email.strip() if isinstance(email, str) else ""
    password = password if isinstance(password, str) else ""
    user = find_user_by_email(db, email) if email else None
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok:
        record_event(
            db,
            "account:login-failed",
            target=f"user:{email[:300]}",
            details={"reason": "unknown-account" if user is None else "wrong-password"},
            now=now,
        )
        raise Unauthorized(LOGIN_FAILED + FORGOT, keep_changes=True)
    if not user.is_active:
        record_event(
            db,
            "account:login-failed",
            target=f"user:{user.email}",
            details={"reason": "disabled"},
            now=now,
        )
        raise Forbidden(
            "This account is disabled; contact a registry administrator.", keep_changes=True
        )
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    record_event(
        db,
        "account:login",
        actor=user,
        target=f"user:{user.email}",
        now=now,
    )
    db.flush()
    return user


def end_sessions(db: Session, user: User, *, now: dt.datetime) -> None:
    """Log out: every session cookie issued to ``user`` stops working."""
    user.session_generation = (user.session_generation or 0) + 1
    record_event(
        db,
        "account:logout",
        actor=user,
        target=f"user:{user.email}",
        now=now,
    )
    db.flush()


def change_password(
    db: Session,
    user: User,
    *,
    current_password: str,
    new_password: str,
    now: dt.datetime,
) -> User:
    """Set a new password; every existing session cookie stops working (tokens stay)."""
    current_password = current_password if isinstance(current_password, str) else ""
    if not verify_password(user.password_hash, current_password):
        raise Forbidden("The current password is wrong.")
    problems = Problems()
    if not isinstance(new_password, str):
        problems.add("new_password", "is required")
        new_password = ""
    for problem in password_problems(new_password, user.email):
        problems.add("new_password", problem)
    if new_password and new_password == current_password:
        problems.add("new_password", "must differ from the current password")
    problems.raise_if_any("Cannot change the password")
    user.password_hash = hash_password(new_password)
    user.password_changed_at = now
    user.session_generation = (user.session_generation or 0) + 1
    record_event(
        db,
        "account:password-change",
        actor=user,
        target=f"user:{user.email}",
        now=now,
    )
    db.flush()
    return user


def accept_terms(db: Session, user: User, *, now: dt.datetime) -> User:
    """Record that ``user`` accepted the registry's terms of use (idempotent)."""
    if user.terms_accepted_at is None:
        user.terms_accepted_at = now
        record_event(
            db,
            "account:terms-accept",
            actor=user,
            target=f"user:{user.email}",
            now=now,
        )
        db.flush()
    return user
