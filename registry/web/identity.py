"""Identity pages: verify the address, resend the link, change it, forgotten password."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from registry.access.requirements import unverified_email
from registry.access.seam import current_principal, requires
from registry.accounts import recovery, sessions, verification
from registry.accounts.links import LinkInvalid, open_link
from registry.context import current_registry
from registry.errors import RegistryError
from registry.ratelimit import rate_limited
from registry.web.blueprint import bp
from registry.web.forms import form_errors, form_values, text_field

Page = str | Response | tuple[str, int]


@bp.get("/account/verify")
@requires("account:read")
def verify_status() -> str:
    user = current_principal().user
    return render_template("account/verify.html", user=user, missing=unverified_email(g.db, user))


@bp.post("/account/verify")
@requires("account:write")
@rate_limited("verify")
def resend_verification() -> Page:
    user = current_principal().user
    registry = current_registry()
    try:
        link = verification.send_verification(g.db, user, registry.settings, now=registry.now())
    except RegistryError as error:
        flash(error.message, "error")
        return redirect(url_for("web.verify_status"))
    flash(f"A new link is on its way to {link.email}; it works once, within 48 hours.", "success")
    return redirect(url_for("web.verify_status"))


@bp.route("/account/verify/<token>", methods=["GET", "POST"])
@requires("public")
def verify_link(token: str) -> Page:
    """GET shows a button (mail scanners that open links must not spend them); POST verifies."""
    now = current_registry().now()
    if request.method == "GET":
        return _link_page("account/verify_link.html", token, "verify", "send a new one")
    try:
        user = verification.verify_email(g.db, token, now=now)
    except RegistryError as error:
        return render_template("account/verify_link.html", error=error.message), error.status
    flash(f"Thank you: {user.email} is verified.", "success")
    return redirect(url_for("web.profile" if current_principal().user else "web.login"))


def _link_page(template: str, token: str, purpose: str, again: str) -> Page:
    """The page behind a mailed link, or why the link no longer works."""
    try:
        link = open_link(g.db, token, purpose, again=again, now=current_registry().now())
    except LinkInvalid as error:
        return render_template(template, error=error.message), error.status
    return render_template(template, link=link, token=token, errors=None)


@bp.route("/password/forgot", methods=["GET", "POST"])
@requires("account:login")
@rate_limited("reset")
def forgot_password() -> Page:
    if request.method == "GET":
        return render_template("account/forgot.html", values={}, sent="")
    registry = current_registry()
    answer = recovery.request_reset(
        g.db, text_field("email", 320), registry.settings, now=registry.now()
    )
    return render_template("account/forgot.html", values=form_values("email"), sent=answer)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
@requires("account:login")
@rate_limited("reset")
def reset_password(token: str) -> Page:
    if request.method == "GET":
        return _link_page("account/reset.html", token, "reset", "ask for a new one")
    try:
        registry = current_registry()
        user = recovery.reset_password(
            g.db, token, text_field("new_password", 1024), registry.settings, now=registry.now()
        )
    except RegistryError as error:
        page = render_template(
            "account/reset.html", token=token, error=error.message, errors=form_errors(error)
        )
        return page, error.status
    sessions.logout_session()
    flash(
        f"New password set for {user.email}. Every session of the account was logged out; "
        "log in with the new password.",
        "success",
    )
    return redirect(url_for("web.login"))


@bp.route("/account/email", methods=["GET", "POST"])
@requires("account:write")
@rate_limited("password")
def change_email() -> Page:
    user = current_principal().user
    if request.method == "GET":
        return render_template("account/email.html", user=user, values={}, errors=None)
    registry = current_registry()
    try:
        link = verification.request_email_change(
            g.db,
            user,
            registry.settings,
            new_email=text_field("email", 320),
            password=text_field("password", 1024),
            now=registry.now(),
        )
    except RegistryError as error:
        errors = form_errors(error)
        if error.status == 403:
            errors.fields["password"] = error.message
        page = render_template(
            "account/email.html", user=user, values=form_values("email"), errors=errors
        )
        return page, error.status
    flash(
        f"Open the link we sent to {link.email} to finish the change; until then your address "
        f"stays {user.email}, which we told about the change.",
        "success",
    )
    return redirect(url_for("web.profile"))


@bp.route("/account/email/confirm/<token>", methods=["GET", "POST"])
@requires("public")
def confirm_email(token: str) -> Page:
    if request.method == "GET":
        return _link_page("account/email_confirm.html", token, "change-email", "ask again")
    try:
        user = verification.confirm_email_change(g.db, token, now=current_registry().now())
    except RegistryError as error:
        return render_template("account/email_confirm.html", error=error.message), error.status
    flash(f"Your address is now {user.email}.", "success")
    return redirect(url_for("web.profile" if current_principal().user else "web.login"))
