"""The outbox for registry admins: queued, sent and failed mail and webhook deliveries."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from registry.access.seam import requires
from registry.context import current_registry
from registry.errors import NotFound, RegistryError
from registry.mail import outbox
from registry.models import OutboxMessage
from registry.models.mail import OUTBOX_STATES
from registry.web.admin import admin_tabs
from registry.web.blueprint import bp


@bp.get("/admin/outbox")
@requires("admin:manage")
def admin_outbox() -> str:
    status = request.args.get("status", "")
    status = status if status in OUTBOX_STATES else ""
    return render_template(
        "admin/outbox.html",
        tabs=admin_tabs(),
        counts=outbox.counts(g.db),
        messages=outbox.list_messages(g.db, status=status or None, limit=200),
        status=status,
        states=OUTBOX_STATES,
    )


@bp.post("/admin/outbox/<int:message_id>/retry")
@requires("admin:manage")
def retry_outbox(message_id: int) -> Response:
    message = g.db.get(OutboxMessage, message_id) if message_id <= 2**31 - 1 else None
    if message is None:
        raise NotFound(f"No outbox message {message_id}.")
    try:
        outbox.retry(g.db, message, now=current_registry().now())
    except RegistryError as error:
        flash(error.message, "error")
    else:
        flash(f"Message {message.id} to {message.recipient} is queued again.", "success")
    return redirect(url_for("web.admin_outbox"))
