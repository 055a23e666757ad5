"""Identity API: verify the address, resend the link, change the address, reset a password."""

from __future__ import annotations

from flask import Response, g, jsonify

from registry.access.seam import current_principal, requires
from registry.accounts import recovery, verification
from registry.api.bodies import parse_body
from registry.api.openapi import document
from registry.api.schemas import accounts as schemas
from registry.api.schemas.common import Acknowledged
from registry.api.v1.blueprint import bp
from registry.api.v1.serializers import USER_SCHEMA, iso, user_dict
from registry.context import current_registry
from registry.errors import Unauthorized
from registry.models import User
from registry.ratelimit import rate_limited

SENT = {
    "type": "object",
    "properties": {"sent_to": {"type": "string"}, "expires_at": {"type": "string"}},
}


def signed_in_user() -> User:
    """The caller (routes that use it require an authenticated action)."""
    user = current_principal().user
    if user is None:  # the seam has already refused anonymous callers
        raise Unauthorized("Log in first.")
    return user


@bp.post("/me/verify-email")
@requires("account:write")
@rate_limited("verify")
@document("Send a new link that verifies your address", response=SENT, status=202)
def resend_verification() -> tuple[Response, int]:
    user = signed_in_user()
    registry = current_registry()
    link = verification.send_verification(g.db, user, registry.settings, now=registry.now())
    return jsonify({"sent_to": link.email, "expires_at": iso(link.expires_at)}), 202


@bp.post("/verify-email")
@requires("public")
@rate_limited("verify")
@document(
    "Verify an address with the token from the mailed link",
    body=schemas.LinkTokenBody,
    response=USER_SCHEMA,
)
def verify_email() -> Response:
    body = parse_body(schemas.LinkTokenBody)
    user = verification.verify_email(g.db, body.token, now=current_registry().now())
    return jsonify(user_dict(user))


@bp.post("/me/email")
@requires("account:write")
@rate_limited("password")
@document(
    "Change your address: a link goes to the new one, a notice to the old one",
    body=schemas.EmailChangeBody,
    response=SENT,
    status=202,
)
def change_email() -> tuple[Response, int]:
    body = parse_body(schemas.EmailChangeBody)
    registry = current_registry()
    link = verification.request_email_change(
        g.db,
        signed_in_user(),
        registry.settings,
        new_email=body.email,
        password=body.password,
        now=registry.now(),
    )
    return jsonify({"sent_to": link.email, "expires_at": iso(link.expires_at)}), 202


@bp.post("/email/confirm")
@requires("public")
@rate_limited("verify")
@document(
    "Confirm a new address with the token from the mailed link",
    body=schemas.LinkTokenBody,
    response=USER_SCHEMA,
)
def confirm_email() -> Response:
    body = parse_body(schemas.LinkTokenBody)
    user = verification.confirm_email_change(g.db, body.token, now=current_registry().now())
    return jsonify(user_dict(user))


@bp.post("/password/forgot")
@requires("account:login")
@rate_limited("reset")
@document(
    "Mail a password reset link (the same answer whether or not the account exists)",
    body=schemas.ForgotBody,
    response=Acknowledged,
    status=202,
)
def forgot_password() -> tuple[Response, int]:
    body = parse_body(schemas.ForgotBody)
    registry = current_registry()
    answer = recovery.request_reset(g.db, body.email, registry.settings, now=registry.now())
    return jsonify({"message": answer}), 202


@bp.post("/password/reset")
@requires("account:login")
@rate_limited("reset")
@document(
    "Choose a new password with the token from the mailed link (ends every session)",
    body=schemas.ResetBody,
    response=USER_SCHEMA,
)
def reset_password() -> Response:
    body = parse_body(schemas.ResetBody)
    registry = current_registry()
    user = recovery.reset_password(
        g.db, body.token, body.new_password, registry.settings, now=registry.now()
    )
    return jsonify({**user_dict(user), "note": "Every session of this account ended; log in."})
