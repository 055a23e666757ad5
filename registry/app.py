"""Application factory: ``create_app()`` builds a registry from settings, with no prompts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Flask, g, request
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import PathConverter

from registry.access.decision import ANONYMOUS
from registry.access.principal import load_principal
from registry.api.bodies import MAX_BODY_BYTES, RegistryRequest
from registry.api.errors import install_error_handlers
from registry.api.headers import install_header_checks
from registry.api.hf_routes import bp as hf_bp
from registry.api.params import install_parameter_checks
from registry.api.v1.routes import bp as v1_bp
from registry.config import Settings
from registry.context import EXTENSION, Registry, build_registry
from registry.ratelimit import init_limiter
from registry.unit_of_work import install_unit_of_work
from registry.web.routes import bp as web_bp

__all__ = ["Registry", "create_app"]


class AnyPathConverter(PathConverter):
    """Like ``path`` but also matches a leading '/', so absolute paths get a clear 400."""

    regex = ".+?"
    part_isolating = False


def create_app(
    overrides: dict[str, Any] | None = None, *, settings: Settings | None = None
) -> Flask:
    """Create the registry WSGI app. ``overrides`` are settings fields (used by tests)."""
    settings = settings or Settings.from_env(**(overrides or {}))
    registry = build_registry(settings)

    app = Flask(__name__, instance_path=str(settings.instance_path))
    app.request_class = RegistryRequest  # per-route body limits, one check of every body
    # "a//b" must reach the path checks (and be refused), not be redirected to "a/b".
    app.url_map.merge_slashes = False
    app.url_map.converters["anypath"] = AnyPathConverter
    install_parameter_checks(app)  # ids, control characters in path and query
    install_header_checks(app)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(days=14),
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,  # per route: registry.api.bodies.ROUTE_LIMITS
        JSON_SORT_KEYS=False,
    )
    app.extensions[EXTENSION] = registry
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]

    install_unit_of_work(app, registry.sessions)

    @app.before_request
    def _load_principal() -> None:
        g.principal = ANONYMOUS
        g.principal = load_principal(g.db, request, registry.now())

    install_error_handlers(app)
    app.register_blueprint(v1_bp)
    app.register_blueprint(hf_bp)
    app.register_blueprint(web_bp)
    init_limiter(app, settings)  # after every blueprint: it wraps the @rate_limited views
    return app
