"""Who is asking: resolved from the ``Authorization`` header or the session cookie.

Interim version (registry core): every request is anonymous. The accounts work replaces
``load_principal`` with token and session lookups.
"""

from __future__ import annotations

import datetime as dt

from flask import Request
from sqlalchemy.orm import Session

from registry.access.decision import ANONYMOUS, Principal


def load_principal(db: Session, request: Request, now: dt.datetime) -> Principal:
    return ANONYMOUS
