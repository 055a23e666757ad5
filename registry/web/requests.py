"""Access requests for contributor-review models: request, see status and reasons."""

from __future__ import annotations

from registry.access.seam import requires
from registry.web import bp


@bp.get("/access-requests")
@requires("account:read")
def my_requests() -> str:
    return ""
