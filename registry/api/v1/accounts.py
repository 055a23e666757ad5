"""Accounts API: register, login/logout, me, password, tokens, institutions and users."""

from __future__ import annotations

from flask import Response, g, jsonify, request
from flask_wtf.csrf import generate_csrf

from registry.access.seam import authorize, current_principal, requires
from registry.accounts import institutions, services, sessions, tokens, verification
from registry.accounts.validation import MAX_ID
from registry.api.bodies import parse_body
from registry.api.openapi import document
from registry.api.params import int_arg
from registry.api.schemas import accounts as schemas
from registry.api.schemas import common
from registry.api.v1.blueprint import bp
from registry.api.v1.serializers import (
    USER_SCHEMA,
    application_dict,
    iso,
    membership_dict,
    token_dict,
    training_dict,
    user_dict,
)
from registry.context import current_registry
from registry.credentials import applications, duas, trainings
from registry.errors import NotFound, Unauthorized
from registry.models import ApiToken, User
from registry.ratelimit import rate_limited


def _user() -> User:
    user = current_principal().user
    if user is None:  # the seam has already refused anonymous callers
        raise Unauthorized("Log in first.")
    return user


@bp.post("/register")
@requires("account:register")
@rate_limited("register")
@document("Create an account", body=schemas.RegisterBody, response=USER_SCHEMA, status=201)
def register() -> tuple[Response, int]:
    body = parse_body(schemas.RegisterBody)
    registry = current_registry()
    user = services.register_user(
        g.db,
        email=body.email,
        password=body.password,
        display_name=body.display_name,
        accept_terms=body.accept_terms,
        now=registry.now(),
    )
    verification.send_verification(g.db, user, registry.settings, now=registry.now())
    return jsonify(user_dict(user)), 201


@bp.post("/login")
@requires("account:login")
@rate_limited("login")
@document(
    "Log in with email and password (sets the session cookie)",
    body=schemas.LoginBody,
    response=USER_SCHEMA,
)
def login() -> Response:
    body = parse_body(schemas.LoginBody)
    now = current_registry().now()
    user = services.authenticate(g.db, body.email, body.password, now=now)
    sessions.login_session(user, now=now)
    # Cookie-authenticated writes need this in an X-CSRFToken header (registry.web.security).
    return jsonify({**user_dict(user), "csrf_token": generate_csrf()})


@bp.post("/logout")
@requires("account:write")
@document("Log out: ends every web session of this account", response=schemas.LoggedOut)
def logout() -> Response:
    services.end_sessions(g.db, _user(), now=current_registry().now())
    sessions.logout_session()
    return jsonify({"logged_out": True, "note": "Every web session of this account ended."})


@bp.get("/me")
@requires("account:read")
@document("The current user, their credentials and what each tier still needs", response=schemas.Me)
def me() -> Response:
    user = _user()
    registry = current_registry()
    status = registry.policy.tier_status(current_principal(), db=g.db, now=registry.now())
    data = user_dict(user)
    data["credential_applications"] = [
        application_dict(a) for a in applications.list_applications(g.db, user=user)
    ]
    data["credentialed"] = any(a["status"] == "accepted" for a in data["credential_applications"])
    data["trainings"] = [training_dict(t) for t in trainings.list_trainings(g.db, user=user)]
    data["dua_signatures"] = [
        {"dua": s.dua, "signed_at": iso(s.signed_at), "text_sha256": s.text_sha256}
        for s in duas.signatures(g.db, user)
    ]
    data["tiers"] = {
        tier: {"eligible": not missing, "missing": [m.to_dict() for m in missing]}
        for tier, missing in status.items()
    }
    principal = current_principal()
    if principal.token is not None:
        data["auth"] = {"type": "token", **token_dict(principal.token)}
    else:
        data["auth"] = {"type": "session", "csrf_token": generate_csrf()}
    return jsonify(data)


@bp.post("/me/password")
@requires("account:write")
@rate_limited("password")
@document(
    "Change your password (ends your other web sessions)",
    body=schemas.PasswordBody,
    response=USER_SCHEMA,
)
def change_password() -> Response:
    body = parse_body(schemas.PasswordBody)
    now = current_registry().now()
    user = services.change_password(
        g.db,
        _user(),
        current_password=body.current_password,
        new_password=body.new_password,
        now=now,
    )
    if current_principal().token is None:
        sessions.login_session(user, now=now)  # keep this browser logged in
    return jsonify(user_dict(user))


@bp.post("/me/terms")
@requires("account:write")
@document("Accept the registry's terms of use", response=USER_SCHEMA)
def accept_terms() -> Response:
    user = services.accept_terms(g.db, _user(), now=current_registry().now())
    return jsonify(user_dict(user))


@bp.get("/tokens")
@requires("account:read")
@document("Your API tokens (never their secrets)", response={"type": "array"})
def list_tokens() -> Response:
    return jsonify([token_dict(t) for t in tokens.list_tokens(g.db, _user())])


@bp.post("/tokens")
@requires("token:create")
@rate_limited("token")
@document(
    "Create an API token; the response shows the secret once",
    body=schemas.TokenBody,
    response=schemas.NewToken,
    status=201,
)
def create_token() -> tuple[Response, int]:
    body = parse_body(schemas.TokenBody)
    registry = current_registry()
    token, plaintext = tokens.create_token(
        g.db,
        _user(),
        name=body.name,
        scope=body.scope,
        expires_in_days=body.expires_in_days,
        default_days=registry.settings.token_default_days,
        max_days=registry.settings.token_max_days,
        now=registry.now(),
        parent=current_principal().token,
    )
    data = token_dict(token)
    data["token"] = plaintext
    data["note"] = "Copy the token now: it is shown only once."
    return jsonify(data), 201


@bp.delete("/tokens/<int:token_id>")
@requires("token:revoke", deferred=True)
@document("Revoke an API token at once", response=common.Token)
def revoke_token(token_id: int) -> Response:
    token = g.db.get(ApiToken, token_id) if token_id <= MAX_ID else None
    if token is None:
        raise NotFound(f"No API token {token_id}.")
    authorize(token)
    tokens.revoke_token(g.db, token, actor=_user(), now=current_registry().now())
    return jsonify(token_dict(token))


@bp.get("/institutions")
@requires("public")
@document("Institutions (their slugs are model namespaces)", response={"type": "array"})
def list_institutions() -> Response:
    return jsonify(
        [
            {"slug": i.slug, "name": i.name, "created_at": iso(i.created_at)}
            for i in institutions.list_institutions(g.db)
        ]
    )


@bp.post("/institutions")
@requires("admin:manage")
@document(
    "Create an institution (registry admins)",
    body=schemas.InstitutionBody,
    response=schemas.Institution,
    status=201,
)
def create_institution() -> tuple[Response, int]:
    body = parse_body(schemas.InstitutionBody)
    institution = institutions.create_institution(
        g.db,
        slug=body.slug,
        name=body.name,
        actor=_user(),
        now=current_registry().now(),
    )
    return jsonify({"slug": institution.slug, "name": institution.name}), 201


@bp.get("/institutions/<slug>/members")
@requires("institution:manage", deferred=True)
@document("Members of an institution and their roles", response={"type": "array"})
def list_members(slug: str) -> Response:
    institution = institutions.get_institution(g.db, slug)
    authorize(institution)
    return jsonify(
        [
            {**membership_dict(m), "email": m.user.email}
            for m in institutions.list_members(g.db, institution)
        ]
    )


@bp.put("/institutions/<slug>/members/<user_ref>")
@requires("institution:manage", deferred=True)
@document(
    "Add a user to an institution or change their role",
    body=schemas.MemberBody,
    response=schemas.Member,
)
def set_member(slug: str, user_ref: str) -> Response:
    institution = institutions.get_institution(g.db, slug)
    authorize(institution)
    body = parse_body(schemas.MemberBody)
    user = institutions.get_user(g.db, user_ref)
    membership = institutions.set_membership(
        g.db,
        institution,
        user,
        role=body.role,
        actor=_user(),
        now=current_registry().now(),
    )
    return jsonify({**membership_dict(membership), "email": user.email})


@bp.delete("/institutions/<slug>/members/<user_ref>")
@requires("institution:manage", deferred=True)
@document("Remove a user from an institution", response=schemas.MemberRemoved)
def remove_member(slug: str, user_ref: str) -> Response:
    institution = institutions.get_institution(g.db, slug)
    authorize(institution)
    user = institutions.get_user(g.db, user_ref)
    institutions.remove_membership(
        g.db,
        institution,
        user,
        actor=_user(),
        now=current_registry().now(),
    )
    return jsonify({"removed": user.email, "institution": institution.slug})


@bp.get("/users")
@requires("admin:manage")
@document(
    "Find users (registry admins)", response={"type": "array"}, query={"q": {"type": "string"}}
)
def list_users() -> Response:
    limit = int_arg("limit", 100, minimum=1, maximum=1000)
    offset = int_arg("offset", 0, minimum=0, maximum=10**9)
    users = institutions.search_users(g.db, request.args.get("q", ""), limit=limit, offset=offset)
    return jsonify([user_dict(u) for u in users])


@bp.patch("/users/<int:user_id>")
@requires("admin:manage")
@document(
    "Grant or remove registry-admin; enable or disable an account",
    body=schemas.UserFlagsBody,
    response=common.User,
)
def update_user(user_id: int) -> Response:
    body = parse_body(schemas.UserFlagsBody)
    user = g.db.get(User, user_id)
    if user is None:
        raise NotFound(f"No user {user_id}.")
    flags = body.model_dump(exclude_none=True)
    institutions.update_user(
        g.db,
        user,
        actor=_user(),
        now=current_registry().now(),
        **flags,
    )
    return jsonify(user_dict(user))
