"""Who is asking: resolved from the ``Authorization`` header or the session cookie.

A presented token that is malformed, unknown, expired or revoked is refused with 401 and
a message saying why, even on public routes: a credential is never silently ignored.
"""

from __future__ import annotations

import datetime as dt

from flask import Request
from sqlalchemy.orm import Session

from registry.access import fixes
from registry.access.decision import ANONYMOUS, Principal
from registry.accounts import sessions, tokens
from registry.errors import Forbidden, Unauthorized

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def load_principal(db: Session, request: Request, now: dt.datetime) -> Principal:
    """The principal of ``request``: token first, then session, else anonymous."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized(
                "Use 'Authorization: Bearer <token>' with a registry API token "
                f"(create one at {fixes.TOKENS})"
            )
        token = tokens.authenticate_token(db, value.strip(), now)
        tokens.touch(db, token, now)
        return Principal(user=token.user, token=token)
    user = sessions.session_user(db, now=now)
    if user is None:
        return ANONYMOUS
    # Session cookies are sent on cross-site requests too; never let those change state.
    if request.method not in SAFE_METHODS and request.headers.get("Sec-Fetch-Site") == "cross-site":
        raise Forbidden("Cross-site requests may not change anything with your session.")
    return Principal(user=user)
