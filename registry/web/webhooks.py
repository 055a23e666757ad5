"""Webhook management for institution and registry admins: subscribe, test, read the log."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from registry.access.seam import authorize, current_principal, requires
from registry.accounts import institutions
from registry.context import current_registry
from registry.errors import RegistryError
from registry.mail.site import Site
from registry.models import Webhook
from registry.web.admin import admin_tabs
from registry.web.blueprint import bp
from registry.web.forms import checked, form_errors, text_field
from registry.webhooks import services
from registry.webhooks.authorization import authorize_hook_creation
from registry.webhooks.events import EVENTS
from registry.webhooks.signing import SIGNATURE_HEADER


@bp.get("/admin/webhooks")
@requires("webhook:manage")
def admin_webhooks() -> str:
    return _render_list()


@bp.post("/admin/webhooks")
@requires("webhook:manage")
def create_webhook() -> str | tuple[str, int]:
    slug = text_field("institution", 64)
    allow_private = checked("allow_private")
    registry = current_registry()
    try:
        institution = institutions.get_institution(g.db, slug) if slug else None
        authorize_hook_creation(institution, allow_private=allow_private)
        hook, secret = services.create_hook(
            g.db,
            url=text_field("url", 2000),
            events=request.form.getlist("events"),
            institution=institution,
            allow_private=allow_private,
            actor=current_principal().user,
            secret_key=registry.settings.secret_key,
            now=registry.now(),
            operator_allows_private=registry.settings.webhook_allow_private,
        )
    except RegistryError as error:
        values = {"url": text_field("url", 2000), "institution": slug}
        page = _render_list(errors=form_errors(error), values=values)
        return page, error.status
    # Shown once, in this response only.
    return _render_list(created=hook, secret=secret), 201


@bp.get("/admin/webhooks/<int:hook_id>")
@requires("webhook:manage", deferred=True)
def admin_webhook(hook_id: int) -> str:
    hook = _hook(hook_id)
    return render_template(
        "admin/webhook.html",
        tabs=admin_tabs(),
        hook=hook,
        deliveries=services.deliveries(g.db, hook),
        signature_header=SIGNATURE_HEADER,
    )


@bp.post("/admin/webhooks/<int:hook_id>/test")
@requires("webhook:manage", deferred=True)
def test_webhook(hook_id: int) -> Response:
    hook = _hook(hook_id)
    registry = current_registry()
    services.send_test(
        g.db, hook, Site.of(registry.settings), actor=current_principal().user, now=registry.now()
    )
    flash("Test delivery queued: it shows below within seconds (reload the page).", "success")
    return redirect(url_for("web.admin_webhook", hook_id=hook.id))


@bp.post("/admin/webhooks/<int:hook_id>/delete")
@requires("webhook:manage", deferred=True)
def delete_webhook(hook_id: int) -> Response:
    hook = _hook(hook_id)
    services.delete_hook(g.db, hook, actor=current_principal().user, now=current_registry().now())
    flash(f"Webhook {hook.url} deleted; nothing more is sent to it.", "success")
    return redirect(url_for("web.admin_webhooks"))


def _hook(hook_id: int) -> Webhook:
    hook = services.get_hook(g.db, hook_id)
    authorize(hook)
    return hook


def _render_list(**context: object) -> str:
    viewer = current_principal().user
    context.setdefault("values", {})
    own = viewer.membership.institution if viewer.membership is not None else None
    choices = institutions.list_institutions(g.db) if viewer.is_registry_admin else []
    return render_template(
        "admin/webhooks.html",
        tabs=admin_tabs(),
        hooks=services.list_hooks(g.db, viewer=viewer),
        events=EVENTS,
        institutions=choices,
        own_institution=own,
        **context,
    )
