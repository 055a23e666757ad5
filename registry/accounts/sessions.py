"""Web sessions in Flask's signed cookie: user id, a per-user generation and a fresh id.

``login_session`` replaces the whole cookie (a new random ``sid`` each time). Logout and
password changes bump ``User.session_generation``, so older cookies no longer match.
"""

from __future__ import annotations

import datetime as dt
import secrets

from flask import session
from sqlalchemy.orm import Session

from registry.models import User

MAX_AGE = dt.timedelta(days=14)


def login_session(user: User, *, now: dt.datetime) -> None:
    """Start a new session for ``user`` (rotating the session id)."""
    session.clear()
    session["uid"] = user.id
    session["gen"] = user.session_generation or 0
    session["sid"] = secrets.token_urlsafe(16)
    session["iat"] = int(now.timestamp())
    session.permanent = True


def logout_session() -> None:
    """Forget the session in this browser (``end_sessions`` ends it everywhere)."""
    session.clear()


def session_user(db: Session, *, now: dt.datetime) -> User | None:
    """The user of a valid session cookie, else ``None`` (and the cookie is cleared)."""
    uid = session.get("uid")
    if uid is None:
        return None
    user = db.get(User, uid) if isinstance(uid, int) else None
    issued = session.get("iat")
    valid = (
        user is not None
        and user.is_active
        and session.get("gen") == (user.session_generation or 0)
        and isinstance(issued, int)
        and now - dt.datetime.fromtimestamp(issued, dt.UTC) < MAX_AGE
    )
    if not valid:
        session.clear()
        return None
    return user
