"""The UI's own CSS and JavaScript (no CDN), served with a short cache lifetime."""

from __future__ import annotations

from pathlib import Path

from flask import Response, send_from_directory

from registry.access.seam import requires
from registry.web.blueprint import bp
from registry.web.security import CONTENT_SECURITY_POLICY

STATIC_DIR = Path(__file__).resolve().parent / "static"
# Only the hashing worker may compile WebAssembly (hash-wasm); it still runs no eval().
WASM_WORKERS = {"js/hash-worker.js"}
WORKER_POLICY = CONTENT_SECURITY_POLICY.replace(
    "script-src 'self'", "script-src 'self' 'wasm-unsafe-eval'"
)


@bp.get("/assets/<path:filename>")
@requires("public")
def static(filename: str) -> Response:
    response = send_from_directory(STATIC_DIR, filename, max_age=300)
    if filename in WASM_WORKERS:
        response.headers["Content-Security-Policy"] = WORKER_POLICY
    return response
