"""Query parameters and pagination cursors, parsed the same way on every route."""

from __future__ import annotations

import base64
import binascii

from flask import request

from registry.errors import BadRequest


def bool_arg(name: str, default: bool = False) -> bool:
    raw = request.args.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes"}:
        return True
    if lowered in {"0", "false", "no", ""}:
        return False
    raise BadRequest(f"Query parameter {name!r} must be true or false, not {raw!r}")


def int_arg(name: str, default: int, *, minimum: int = 0, maximum: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"Query parameter {name!r} must be an integer, not {raw!r}") from None
    if not minimum <= value <= maximum:
        raise BadRequest(f"Query parameter {name!r} must be between {minimum} and {maximum}")
    return value


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode().rstrip("=")


def cursor_arg() -> int:
    raw = request.args.get("cursor")
    if not raw:
        return 0
    try:
        offset = int(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadRequest("Invalid pagination cursor; use the Link header's next URL") from None
    if offset < 0:
        raise BadRequest("Invalid pagination cursor; use the Link header's next URL")
    return offset
