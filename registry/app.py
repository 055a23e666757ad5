"""Application factory: ``create_app()`` builds a registry from settings, with no prompts."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, g, request
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import PathConverter

from registry.access.decision import ANONYMOUS
from registry.access.engine import PolicyEngine
from registry.access.seam import install_guard
from registry.config import Settings
from registry.db import make_engine, make_sessionmaker, utcnow
from registry.storage import BlobStore, open_blob_store


class AnyPathConverter(PathConverter):
    """Like ``path`` but also matches a leading '/', so absolute paths get a clear 400."""

    regex = ".+?"
    part_isolating = False


@dataclasses.dataclass
class Registry:
    """Everything a request needs, built once per process."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: BlobStore
    policy: PolicyEngine
    clock: Callable[[], dt.datetime] = utcnow

    def now(self) -> dt.datetime:
        return self.clock()


def current_registry() -> Registry:
    return current_app.extensions["registry"]


def build_registry(settings: Settings) -> Registry:
    """Engine, blob store and policy for ``settings`` (also used by the CLI)."""
    engine = make_engine(settings.database_url)
    return Registry(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        blobs=open_blob_store(settings.storage_url, instance_path=settings.instance_path),
        policy=PolicyEngine.load(settings.policies_path),
    )


def create_app(
    overrides: dict[str, Any] | None = None, *, settings: Settings | None = None
) -> Flask:
    """Create the registry WSGI app. ``overrides`` are settings fields (used by tests)."""
    settings = settings or Settings.from_env(**(overrides or {}))
    registry = build_registry(settings)

    app = Flask(__name__, instance_path=str(settings.instance_path))
    # "a//b" must reach the path checks (and be refused), not be redirected to "a/b".
    app.url_map.merge_slashes = False
    app.url_map.converters["anypath"] = AnyPathConverter
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(days=14),
        MAX_CONTENT_LENGTH=None,
        JSON_SORT_KEYS=False,
    )
    app.extensions["registry"] = registry
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]

    @app.before_request
    def _open_request() -> None:
        g.db = registry.sessions()
        g.principal = ANONYMOUS
        from registry.access.principal import load_principal

        g.principal = load_principal(g.db, request, registry.now())

    @app.teardown_request
    def _close_request(_exc: BaseException | None) -> None:
        db = g.pop("db", None)
        if db is not None:
            db.close()

    from registry.api.errors import install_error_handlers
    from registry.api.hf import bp as hf_bp
    from registry.api.v1 import bp as v1_bp

    install_error_handlers(app)
    install_guard(app)
    app.register_blueprint(v1_bp)
    app.register_blueprint(hf_bp)
    _register_optional_blueprints(app)
    from registry.ratelimit import init_limiter

    init_limiter(app, settings)  # after every blueprint: it wraps the @rate_limited views
    return app


def _register_optional_blueprints(app: Flask) -> None:
    """Web UI and other parts register themselves through ``registry.blueprints``."""
    from registry.blueprints import register_all

    register_all(app)
