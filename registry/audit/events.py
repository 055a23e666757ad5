"""What an audit event records about where a request came from."""

from __future__ import annotations

import dataclasses
from typing import Any

# Where the request pipeline leaves the request's origin in its session's ``info``.
INFO_KEY = "request_info"


@dataclasses.dataclass(frozen=True)
class RequestInfo:
    """Where a request came from, for the audit trail."""

    ip: str = ""
    user_agent: str = ""


def session_request_info(db: Any) -> RequestInfo:
    """Where the work in session ``db`` was asked for (empty for commands and tests)."""
    return db.info.get(INFO_KEY) or RequestInfo()
