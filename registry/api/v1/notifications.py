"""Your notification settings: what the registry mails you."""

from __future__ import annotations

from flask import Response, g, jsonify

from registry.access.seam import requires
from registry.api.bodies import parse_body
from registry.api.openapi import document
from registry.api.schemas.notifications import NotificationSettings
from registry.api.v1.blueprint import bp
from registry.api.v1.identity import signed_in_user
from registry.context import current_registry
from registry.notifications.preferences import (
    CATEGORIES,
    as_dict,
    preferences,
    update_preferences,
)

SETTINGS_SCHEMA = {
    "type": "object",
    "properties": {
        "decisions": {"type": "boolean"},
        "reviews": {"enum": ["each", "digest", "off"]},
        "expiry": {"type": "boolean"},
        "withdrawals": {"type": "boolean"},
        "publications": {"type": "boolean"},
    },
}


@bp.get("/me/notifications")
@requires("account:read")
@document("What the registry mails you, and what each setting means", response=SETTINGS_SCHEMA)
def get_notifications() -> Response:
    return jsonify(
        {"settings": as_dict(preferences(g.db, signed_in_user())), "categories": CATEGORIES}
    )


@bp.put("/me/notifications")
@requires("account:write")
@document("Change what the registry mails you", body=NotificationSettings, response=SETTINGS_SCHEMA)
def put_notifications() -> Response:
    values = parse_body(NotificationSettings).model_dump(exclude_unset=True)
    chosen = update_preferences(g.db, signed_in_user(), values, now=current_registry().now())
    return jsonify({"settings": as_dict(chosen), "categories": CATEGORIES})
