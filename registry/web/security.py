"""CSRF protection and security headers for the web UI.

CSRF applies to every state-changing request of the ``web`` blueprint (forms carry a
``csrf_token`` field) and to every state-changing request authenticated by the session
cookie, whatever its blueprint: the upload JavaScript calls the JSON API with the cookie,
so it sends the token in an ``X-CSRFToken`` header. Requests authenticated with a Bearer
token carry no ambient credential and are exempt.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, g, request
from flask_wtf.csrf import CSRFProtect

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "X-CSRFToken"

csrf = CSRFProtect()


def init_app(app: Flask) -> None:
    """Install CSRF checks (scoped, see the module docstring) and the security headers."""
    # Flask-WTF would otherwise check every blueprint, the Bearer-token API included.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    # The token is bound to the session; a long upload must not outlive a time limit.
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    app.config.setdefault("WTF_CSRF_HEADERS", [CSRF_HEADER, "X-CSRF-Token"])
    csrf.init_app(app)
    # Registered after the core's before_request, so ``g.principal`` is already loaded.
    app.before_request(_require_csrf_token)
    app.after_request(_security_headers)


def authenticated_by_cookie() -> bool:
    """True when the request's user came from the session cookie, not a Bearer token."""
    principal = g.get("principal")
    return bool(principal is not None and principal.is_authenticated and principal.token is None)


def _require_csrf_token() -> None:
    if request.method not in STATE_CHANGING or not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    if request.blueprint == "web" or authenticated_by_cookie():
        csrf.protect()


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    if request.blueprint == "web" and request.endpoint != "web.static":
        # Pages show personal data (tokens once, credential status): never cache them.
        headers.setdefault("Cache-Control", "no-store")
    return response
