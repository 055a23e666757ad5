"""Accounts: register, log in and out, profile, password change, terms of use."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from client.shared import rules
from registry.access.seam import authorize, current_principal, requires
from registry.accounts import services as accounts
from registry.accounts import sessions, tokens, verification
from registry.context import current_registry
from registry.errors import NotFound, RegistryError
from registry.models import ApiToken
from registry.ratelimit import rate_limited
from registry.web.blueprint import bp
from registry.web.credentials import credential_summary
from registry.web.forms import checked, form_errors, form_values, safe_next, text_field

Page = str | Response | tuple[str, int]


@bp.route("/login", methods=["GET", "POST"])
@requires("account:login")
@rate_limited("login")
def login() -> Page:
    next_url = safe_next(request.values.get("next"), url_for("web.home"))
    if request.method == "GET":
        return render_template("account/login.html", next_url=next_url, values={})
    try:
        user = accounts.authenticate(
            g.db,
            text_field("email", 320),
            text_field("password", 1024),
            now=current_registry().now(),
        )
    except RegistryError as error:
        values = form_values("email")
        page = render_template(
            "account/login.html", next_url=next_url, values=values, error=error.message
        )
        return page, error.status
    sessions.login_session(user, now=current_registry().now())
    return redirect(next_url)


@bp.route("/register", methods=["GET", "POST"])
@requires("account:register")
@rate_limited("register")
def register() -> Page:
    next_url = safe_next(request.values.get("next"), "")
    if request.method == "GET":
        return render_template("account/register.html", values={}, errors=None, next_url=next_url)
    try:
        user = accounts.register_user(
            g.db,
            email=text_field("email", 320),
            password=text_field("password", 1024),
            display_name=text_field("display_name", 200),
            accept_terms=checked("accept_terms"),
            now=current_registry().now(),
        )
    except RegistryError as error:
        values = form_values("email", "display_name")
        errors = form_errors(error)
        if errors.get("accept_terms"):
            errors.fields["accept_terms"] = "Accept the terms of use to create an account."
        page = render_template(
            "account/register.html", values=values, errors=errors, next_url=next_url
        )
        return page, error.status
    registry = current_registry()
    verification.send_verification(g.db, user, registry.settings, now=registry.now())
    sessions.login_session(user, now=registry.now())
    then = (
        "Then continue with the steps below."
        if next_url
        else ("Then apply for credentialing to reach gated models.")
    )
    flash(
        f"Welcome! We sent a link to {user.email}: open it to verify your address. {then}",
        "success",
    )
    return redirect(next_url or url_for("web.profile"))


@bp.post("/logout")
@requires("public")
def logout() -> Response:
    user = current_principal().user
    if user is not None:
        # Ends this session everywhere: a copied cookie stops working too.
        accounts.end_sessions(g.db, user, now=current_registry().now())
    sessions.logout_session()
    flash("You are logged out.", "info")
    return redirect(url_for("web.home"))


@bp.get("/account")
@requires("account:read")
def profile() -> str:
    registry = current_registry()
    principal = current_principal()
    return render_template(
        "account/profile.html",
        user=principal.user,
        summary=credential_summary(principal.user),
        tiers=registry.policy.tier_status(principal, db=g.db, now=registry.now()),
        tier_specs={name: registry.policy.tier(name) for name in registry.policy.tier_names()},
    )


@bp.route("/account/password", methods=["GET", "POST"])
@requires("account:write")
def password() -> Page:
    if request.method == "GET":
        return render_template("account/password.html", errors=None)
    user = current_principal().user
    try:
        accounts.change_password(
            g.db,
            user,
            current_password=text_field("current_password", 1024),
            new_password=text_field("new_password", 1024),
            now=current_registry().now(),
        )
    except RegistryError as error:
        errors = form_errors(error)
        if error.status == 403:
            errors.fields["current_password"] = error.message
        return render_template("account/password.html", errors=errors), error.status
    # The change ended every session, this one included: start a fresh one here.
    sessions.login_session(user, now=current_registry().now())
    flash(
        "Password changed. Other browsers where you were logged in are now logged out.", "success"
    )
    return redirect(url_for("web.profile"))


@bp.route("/account/terms", methods=["GET", "POST"])
@requires("account:write")
def terms() -> Page:
    user = current_principal().user
    if request.method == "POST":
        accounts.accept_terms(g.db, user, now=current_registry().now())
        flash("Thank you: you accepted the terms of use.", "success")
        return redirect(safe_next(request.form.get("next"), url_for("web.profile")))
    return render_template("account/terms.html", user=user, next_url=request.args.get("next", ""))


@bp.get("/account/tokens")
@requires("account:read")
def tokens_page() -> str:
    return _render_tokens()


@bp.post("/account/tokens")
@requires("token:create")
@rate_limited("token")
def create_token() -> Page:
    registry = current_registry()
    days = request.form.get("expires_in_days", "").strip()
    try:
        _token, plaintext = tokens.create_token(
            g.db,
            current_principal().user,
            name=text_field("name", 100),
            scope=text_field("scope", 16),
            expires_in_days=int(days) if rules.ID_RE.match(days) else (None if not days else -1),
            default_days=registry.settings.token_default_days,
            max_days=registry.settings.token_max_days,
            now=registry.now(),
        )
    except RegistryError as error:
        values = form_values("name", "scope", "expires_in_days")
        return _render_tokens(errors=form_errors(error), values=values), error.status
    # Shown once, in this response only: it is never stored in the session or the database.
    return _render_tokens(created=plaintext), 201


@bp.post("/account/tokens/<int:token_id>/revoke")
@requires("token:revoke", deferred=True)
def revoke_token(token_id: int) -> Response:
    token = g.db.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"No API token #{token_id}.")
    authorize(token)
    tokens.revoke_token(
        g.db,
        token,
        actor=current_principal().user,
        now=current_registry().now(),
    )
    flash(f"Token {token.prefix}… ({token.name}) is revoked and stops working now.", "success")
    return redirect(url_for("web.tokens_page"))


def _render_tokens(**context: object) -> str:
    registry = current_registry()
    context.setdefault("values", {})
    return render_template(
        "account/tokens.html",
        tokens=tokens.list_tokens(g.db, current_principal().user),
        now=registry.now(),
        default_days=registry.settings.token_default_days,
        max_days=registry.settings.token_max_days,
        **context,
    )


@bp.get("/terms")
@requires("public")
def terms_text() -> str:
    return render_template("account/terms.html", user=current_principal().user, next_url="")
