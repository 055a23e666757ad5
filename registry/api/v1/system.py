"""Health and the OpenAPI document."""

from __future__ import annotations

from flask import Response, current_app, g, jsonify
from sqlalchemy import text

from registry.access.seam import requires
from registry.api.openapi import build_openapi, document
from registry.api.v1.blueprint import bp
from registry.context import current_registry


@bp.get("/health")
@requires("public")
@document("Liveness and readiness: database and blob storage", response={"type": "object"})
def health() -> Response:
    g.db.execute(text("SELECT 1"))
    current_registry().blobs.check_health()
    return jsonify({"status": "ok"})


@bp.get("/ping")
@requires("public")
@document("A no-op route (no database, no storage): a baseline for benchmarks")
def ping() -> Response:
    return jsonify({"pong": True})


@bp.get("/openapi.json")
@requires("public")
def openapi() -> Response:
    return jsonify(build_openapi(current_app))
