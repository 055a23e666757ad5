"""Path and query parameters and pagination cursors, parsed the same way on every route.

``IdConverter`` replaces Flask's ``int`` converter: ASCII digits within the column range
only (``str.isdigit()`` and werkzeug's ``\\d`` also accept '²'; 20 digits overflow the
database), so an id that cannot name a row answers 404 before any query runs.
``refuse_control_characters`` runs before every view: NUL and other control characters in
a path or query parameter get a 400 that names the parameter (PostgreSQL cannot even
compare a string with NUL in it).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from flask import Flask, request
from werkzeug.routing import BaseConverter, Map, ValidationError

from client.shared import rules
from registry.errors import BadRequest


class IdConverter(BaseConverter):
    """``<int:name>``: a database id (ASCII digits, at most ``rules.ID_MAX``)."""

    regex = r"[0-9]{1,10}"
    weight = 50

    def __init__(self, url_map: Map, *args: Any, **kwargs: Any) -> None:
        super().__init__(url_map)

    def to_python(self, value: str) -> int:
        parsed = rules.parse_id(value)
        if parsed is None:
            raise ValidationError()
        return parsed

    def to_url(self, value: Any) -> str:
        return str(int(value))


def refuse_control_characters() -> None:
    """400 naming the path or query parameter that carries a control character."""
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str) and (found := rules.control_character(value)):
            raise BadRequest(
                f"Path parameter {name!r} contains the control character {found}; remove it."
            )
    for name, value in request.args.items(multi=True):
        if found := rules.control_character(name) or rules.control_character(value):
            raise BadRequest(
                f"Query parameter {ascii(name)} contains the control character {found}; remove it."
            )


def install_parameter_checks(app: Flask) -> None:
    """Ids through ``IdConverter`` and no control characters (before any route is added)."""
    app.url_map.converters["int"] = IdConverter
    app.before_request(refuse_control_characters)


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
    if not 0 <= offset <= rules.ID_MAX:
        raise BadRequest("Invalid pagination cursor; use the Link header's next URL")
    return offset
