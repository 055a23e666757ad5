"""Rate limits on login, registration, password and token requests (Flask-Limiter).

Views opt in with ``@rate_limited("login")``; ``init_limiter`` (called by the app factory
after every blueprint is registered) wraps them with a per-app ``Limiter``. The API and the
web UI share one counter per name. Guessing passwords is limited per *account* (the email
in the request, or the signed-in user) so that one hospital NAT, where hundreds of people
share an address, is not one lock: ten wrong passwords for one account lock that account,
not its neighbours. A higher per-address ceiling still stops one address from trying many
accounts. Counters live in Redis when ``REGISTRY_RATELIMIT_STORAGE_URL`` is set (shared by
every process), else in memory.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, g, request
from flask_limiter import Limiter
from redis.exceptions import RedisError

from registry.accounts.addresses import AddressRefused, email_key, normalize_email
from registry.api.errors import STORE_DOWN, render_error
from registry.config import Settings

F = TypeVar("F", bound=Callable[..., Any])
LIMIT_ATTR = "registry_rate_limit"
# Every Redis call is bounded: a store that stops answering costs a request 1 s, then a 503
# (or, with REGISTRY_RATELIMIT_FAIL_OPEN, no limit), never a request stuck for good.
REDIS_TIMEOUTS = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}


@dataclasses.dataclass(frozen=True)
class Limit:
    """How often one address (and, if set, one account) may call a group of views."""

    per_address: str
    message: str
    per_account: str | None = None
    account_message: str = ""
    # Only refusals count (a wrong password), so people who log in correctly never queue.
    failures_only: bool = False
    # Whose counter: the account an ``email`` field names (login, reset), or the signed-in
    # one (its password or tokens; an ``email`` there is a new address, not the account).
    signed_in: bool = False


LIMITS: dict[str, Limit] = {
    "login": Limit(
        "100 per minute;1000 per hour",
        "Too many failed logins from your address; wait a minute and retry.",
        per_account="10 per minute;100 per hour",
        account_message="Too many failed logins for this account; wait a minute and retry.",
        failures_only=True,
    ),
    "register": Limit(
        "5 per hour;20 per day", "Too many registrations from your address; retry later."
    ),
    "token": Limit(
        "200 per hour",
        "Too many tokens created from your address; wait and retry, or reuse a token.",
        per_account="20 per hour",
        account_message="Too many tokens created; wait and retry, or reuse a token.",
        signed_in=True,
    ),
    "password": Limit(
        "100 per hour",
        "Too many password attempts from your address; wait an hour and retry.",
        per_account="10 per hour",
        account_message="Too many password attempts; wait an hour and retry.",
        failures_only=True,
        signed_in=True,
    ),
    "reset": Limit(
        "100 per hour",
        "Too many password reset requests from your address; retry later.",
        per_account="10 per hour",
        account_message="Too many password reset requests for this account; retry later.",
    ),
    # Counted per account (a resend: the signed-in one; opening a link: that link), so a
    # hospital NAT verifies all its new hires; the per-address ceiling stops one address
    # hammering (each account also gets at most ``verification.MAX_LINKS_PER_HOUR`` mails).
    "verify": Limit(
        "100 per hour",
        "Too many verification requests from your address; retry later.",
        per_account="10 per hour",
        account_message="Too many verification requests for this account; use the newest link.",
    ),
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


def signed_in_key() -> str:
    """The signed-in account (else the client address: the view refuses the request)."""
    user = getattr(g.get("principal"), "user", None)
    return f"user:{user.id}" if user is not None else "address:" + client_address()


def account_key() -> str:
    """The account a request acts on: the email it names, else the signed-in user, else the
    mailed link it redeems (one per account), else the client address."""
    body = request.get_json(silent=True) if request.is_json else None
    body = body if isinstance(body, dict) else {}
    email = request.form.get("email") if request.form else None
    if email is None:
        email = body.get("email")
    if isinstance(email, str) and email.strip():
        return "email:" + _canonical(email)[:320]
    user = getattr(g.get("principal"), "user", None)
    if user is not None:
        return f"user:{user.id}"
    link = (request.view_args or {}).get("token") or body.get("token")
    if isinstance(link, str) and link:
        # A reset link names its account without a login: people behind one hospital NAT
        # each redeem their own link, and one link cannot be tried more than the limit.
        return "link:" + hashlib.sha256(link.encode()).hexdigest()[:32]
    return "address:" + client_address()


def _canonical(email: str) -> str:
    """One key per account however its address is spelled (case, fullwidth, punycode)."""
    try:
        return email_key(normalize_email(email))
    except AddressRefused:  # refused by the view too; counted under what was typed
        return email.strip().lower()


def _failed(response: Response) -> bool:
    """A refused attempt (a wrong password); not a refusal by the limiter or an outage."""
    return 400 <= response.status_code < 500 and response.status_code != 429


def _guard_after_request(app: Flask, limiter: Limiter) -> None:
    """The limiter counts failed attempts after the view: a store that fails then answers
    503 like one that fails before it (else Flask turns the error into a bare 500)."""
    hooks = app.after_request_funcs.setdefault(None, [])
    for index, hook in enumerate(hooks):
        if isinstance(hook, functools.partial) and limiter in hook.args:
            hooks[index] = _answer_outage(app, hook)


def _answer_outage(app: Flask, hook: Callable[[Response], Response]) -> Any:
    def guarded(response: Response) -> Response:
        try:
            return hook(response)
        except RedisError as error:
            app.logger.error("rate-limit store unavailable after the view: %s", error)
            return render_error(503, "ServiceUnavailable", STORE_DOWN)

    return guarded


def _limit_name(view: Any) -> str | None:
    while view is not None:
        name = getattr(view, LIMIT_ATTR, None)
        if name is not None:
            return name
        view = getattr(view, "__wrapped__", None)
    return None


def uses_redis(settings: Settings) -> bool:
    """Whether rate limits are counted in Redis or Valkey (any of their URL schemes)."""
    scheme = (settings.ratelimit_storage_url or "").split(":", 1)[0]
    return settings.ratelimit_enabled and scheme.split("+", 1)[0] in ("redis", "rediss", "valkey")


def init_limiter(app: Flask, settings: Settings) -> Limiter | None:
    """Attach a limiter to ``app`` and wrap every view marked ``@rate_limited``."""
    if not settings.ratelimit_enabled:
        return None
    limiter = Limiter(
        client_address,
        storage_uri=settings.ratelimit_storage_url or "memory://",
        storage_options=REDIS_TIMEOUTS if uses_redis(settings) else {},
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
    if not settings.ratelimit_fail_open:
        _guard_after_request(app, limiter)
    for endpoint, view in list(app.view_functions.items()):
        name = _limit_name(view) or ENDPOINT_LIMITS.get(endpoint)
        if name is None:
            continue
        spec = LIMITS[name]
        deduct = _failed if spec.failures_only else None
        wrapped = limiter.shared_limit(
            spec.per_address,
            scope=name,
            methods=["POST"],
            error_message=spec.message,
            deduct_when=deduct,
        )(view)
        if spec.per_account:
            wrapped = limiter.shared_limit(
                spec.per_account,
                scope=f"{name}-account",
                key_func=signed_in_key if spec.signed_in else account_key,
                methods=["POST"],
                error_message=spec.account_message,
                deduct_when=deduct,
            )(wrapped)
        app.view_functions[endpoint] = wrapped
    app.extensions["registry_limiter"] = limiter

    return limiter
