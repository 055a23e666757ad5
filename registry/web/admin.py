"""Admin queues: credentials, trainings, access requests, version reviews, users, audit."""

from __future__ import annotations

from registry.access.seam import requires
from registry.web import bp


@bp.get("/admin")
@requires("admin:manage")
def admin_home() -> str:
    return ""
