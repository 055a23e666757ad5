"""Health and the OpenAPI document."""

from __future__ import annotations

from flask import Response, current_app, jsonify

from registry.access.seam import requires
from registry.api.openapi import build_openapi, document
from registry.api.schemas import system as schemas
from registry.api.v1.blueprint import bp
from registry.context import current_registry
from registry.health import check_backends


@bp.get("/health")
@requires("public")
@document(
    "Liveness and readiness within 2 s: each backend, and which one is failing (503)",
    response=schemas.Health,
)
def health() -> Response:
    limiter = current_app.extensions.get("registry_limiter")
    backends = check_backends(
        current_registry(), ratelimit=limiter.storage if limiter is not None else None
    )
    failing = [b.name for b in backends if not b.ok]
    response = jsonify(
        {
            "status": "failing" if failing else "ok",
            "failing": failing,
            "backends": {b.name: b.to_dict() for b in backends},
        }
    )
    if failing:
        response.status_code = 503
        response.headers["X-Error-Code"] = "ServiceUnavailable"
        response.headers["X-Error-Message"] = "failing: " + ", ".join(
            f"{b.name} ({b.detail})" for b in backends if not b.ok
        )
    return response


@bp.get("/ping")
@requires("public")
@document(
    "A no-op route (no database, no storage): a baseline for benchmarks", response=schemas.Pong
)
def ping() -> Response:
    return jsonify({"pong": True})


@bp.get("/openapi.json")
@requires("public")
def openapi() -> Response:
    return jsonify(build_openapi(current_app))
