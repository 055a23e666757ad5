"""What every request and command works with, in one small module below the app factory.

``Registry`` holds the per-process parts (settings, database, blob store, policy, clock);
``current_registry()`` finds it from a request. ``db()``, ``now()`` and ``request_info()``
are the request's session, the registry's clock and where the request came from. Nothing
here imports the app factory, a blueprint or a service, so any module may import it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from flask import current_app, g, has_request_context, request
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from registry import identities
from registry.access.engine import PolicyEngine
from registry.audit.events import RequestInfo
from registry.config import Settings
from registry.db import make_engine, make_sessionmaker, utcnow
from registry.identities import IdentityGuard
from registry.notifications import dispatch
from registry.storage import BlobStore, open_blob_store

EXTENSION = "registry"


@dataclasses.dataclass
class Registry:
    """Everything a request needs, built once per process."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: BlobStore
    policy: PolicyEngine
    clock: Callable[[], dt.datetime] = utcnow
    identities: IdentityGuard | None = None

    def now(self) -> dt.datetime:
        return self.clock()


def build_registry(settings: Settings) -> Registry:
    """Engine, blob store and policy for ``settings`` (the app factory and the CLI)."""
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    dispatch.install(sessions, settings)  # commits queue the mail and webhooks they imply
    blobs = open_blob_store(settings.storage_url, instance_path=settings.instance_path)
    guard = identities.install(sessions, blobs)  # ids and tags are marked in the blob store
    identities.check_restore(engine, sessions, guard, accept=settings.accept_restore)
    return Registry(
        settings=settings,
        engine=engine,
        sessions=sessions,
        blobs=blobs,
        policy=PolicyEngine.load(settings.policies_path),
        identities=guard,
    )


def current_registry() -> Registry:
    """The registry of the running app."""
    return current_app.extensions[EXTENSION]


def db() -> Session:
    """The request's database session (its unit of work, committed once at the end)."""
    return g.db


def now() -> dt.datetime:
    """The registry's clock (tests inject one); never ``datetime.now()`` for policy."""
    return current_registry().now()


def request_info() -> RequestInfo:
    """Where the current request came from, for the audit trail (empty outside a request)."""
    if not has_request_context():
        return RequestInfo()
    return RequestInfo(
        ip=request.remote_addr or "", user_agent=request.headers.get("User-Agent", "")[:300]
    )
