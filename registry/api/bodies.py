"""Request bodies: read within a size bound, parsed into what a view expects."""

from __future__ import annotations

from typing import Any

from flask import request

from registry.errors import BadRequest

MAX_JSON_BYTES = 1024 * 1024


def json_object() -> dict[str, Any]:
    """The request's JSON object body (400 with a clear message otherwise)."""
    if not request.is_json:
        raise BadRequest("Send a JSON object with 'Content-Type: application/json'.")
    request.max_content_length = MAX_JSON_BYTES  # larger bodies get 413 before being read
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.")
    return data
