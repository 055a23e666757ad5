"""The UI's own CSS and JavaScript (no CDN), served with a short cache lifetime."""

from __future__ import annotations

from pathlib import Path

from flask import Response, send_from_directory

from registry.access.seam import requires
from registry.web.blueprint import bp

STATIC_DIR = Path(__file__).resolve().parent / "static"


@bp.get("/assets/<path:filename>")
@requires("public")
def static(filename: str) -> Response:
    return send_from_directory(STATIC_DIR, filename, max_age=300)
