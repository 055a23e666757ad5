"""Notification settings: what the registry mails you."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from registry.access.seam import current_principal, requires
from registry.context import current_registry
from registry.errors import RegistryError
from registry.models.notifications import REVIEW_MODES
from registry.notifications.preferences import CATEGORIES, FLAGS, preferences, update_preferences
from registry.web.blueprint import bp
from registry.web.forms import checked, form_errors


@bp.get("/account/notifications")
@requires("account:read")
def notifications() -> str:
    return _render()


@bp.post("/account/notifications")
@requires("account:write")
def save_notifications() -> str | Response | tuple[str, int]:
    values: dict[str, object] = {name: checked(name) for name in FLAGS}
    values["reviews"] = request.form.get("reviews", "each")
    try:
        update_preferences(g.db, current_principal().user, values, now=current_registry().now())
    except RegistryError as error:
        return _render(errors=form_errors(error)), error.status
    flash("Notification settings saved.", "success")
    return redirect(url_for("web.notifications"))


def _render(**context: object) -> str:
    user = current_principal().user
    return render_template(
        "account/notifications.html",
        user=user,
        chosen=preferences(g.db, user),
        categories=CATEGORIES,
        flags=FLAGS,
        review_modes=REVIEW_MODES,
        **context,
    )
