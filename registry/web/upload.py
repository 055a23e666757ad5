"""The institutional upload form: create a model or a version, upload, submit for review."""

from __future__ import annotations

from registry.access.seam import requires
from registry.web import bp


@bp.get("/publish")
@requires("account:read")
def upload_home() -> str:
    return ""
