"""Rate limits on login, registration and token creation (Flask-Limiter).

Views opt in with ``@rate_limited("login")``; ``init_limiter`` (called by the app factory
after every blueprint is registered) wraps them with a per-app ``Limiter``. The API and the
web UI share one counter per name and client address. Counters live in Redis when
``REGISTRY_RATELIMIT_STORAGE_URL`` is set (shared by every process), else in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, request
from flask_limiter import Limiter

from registry.config import Settings

F = TypeVar("F", bound=Callable[..., Any])
LIMIT_ATTR = "registry_rate_limit"

LIMITS: dict[str, tuple[str, str]] = {
    "login": ("10 per minute;100 per hour", "Too many login attempts; wait a minute and retry."),
    "register": ("5 per hour;20 per day", "Too many registrations from your address; retry later."),
    "token": ("20 per hour", "Too many tokens created; wait and retry, or reuse a token."),
    "password": ("10 per hour", "Too many password attempts; wait an hour and retry."),
    "reset": ("10 per hour", "Too many password reset requests from your address; retry later."),
    "verify": ("10 per hour", "Too many verification links asked for; use the newest one."),
}


# Views limited by endpoint name, for pages that do not carry the decorator themselves.
ENDPOINT_LIMITS = {
    "web.login": "login",
    "web.register": "register",
    "web.create_token": "token",
    "web.password": "password",
}


def rate_limited(name: str) -> Callable[[F], F]:
    """Mark a view as limited by ``LIMITS[name]`` (enforced once ``init_limiter`` runs)."""
    if name not in LIMITS:
        raise KeyError(f"unknown rate limit {name!r}; add it to registry.ratelimit.LIMITS")

    def decorate(view: F) -> F:
        setattr(view, LIMIT_ATTR, name)
        return view

    return decorate


def client_address() -> str:
    return request.remote_addr or "unknown"


def _limit_name(view: Any) -> str | None:
    while view is not None:
        name = getattr(view, LIMIT_ATTR, None)
        if name is not None:
            return name
        view = getattr(view, "__wrapped__", None)
    return None


def init_limiter(app: Flask, settings: Settings) -> Limiter | None:
    """Attach a limiter to ``app`` and wrap every view marked ``@rate_limited``."""
    if not settings.ratelimit_enabled:
        return None
    limiter = Limiter(
        client_address,
        storage_uri=settings.ratelimit_storage_url or "memory://",
        strategy="moving-window",
        headers_enabled=True,
        key_prefix="registry",
        swallow_errors=settings.ratelimit_fail_open,  # else a RedisError answers 503
    )

    # Registered before the limiter's own hook, so it runs after it (Flask runs them in
    # reverse): Flask-Limiter sends Retry-After on every limited answer, and on a success
    # that would tell a client that honours it to wait an hour for nothing.
    @app.after_request
    def _retry_after_only_on_refusals(response: Response) -> Response:
        if response.status_code < 400:
            response.headers.pop("Retry-After", None)
        return response

    limiter.init_app(app)
    for endpoint, view in list(app.view_functions.items()):
        name = _limit_name(view) or ENDPOINT_LIMITS.get(endpoint)
        if name is None:
            continue
        spec, message = LIMITS[name]
        limit = limiter.shared_limit(spec, scope=name, methods=["POST"], error_message=message)
        app.view_functions[endpoint] = limit(view)
    app.extensions["registry_limiter"] = limiter

    return limiter
