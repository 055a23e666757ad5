"""Credentials: apply, submit a training certificate, read and sign a DUA."""

from __future__ import annotations

from registry.access.seam import requires
from registry.web import bp


@bp.get("/credentials")
@requires("account:read")
def credentials() -> str:
    return ""
