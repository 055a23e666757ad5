"""Shared fixtures: real databases (SQLite and PostgreSQL), real blob folders, a real app,
a live HTTP server on loopback and a tiny diffusers model built offline."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

pytest_plugins = [
    "tests.fixtures.s3",
    "tests.fixtures.models",
    "tests.fixtures.repos",
    "tests.fixtures.servers",
    "tests.fixtures.principals",
    "tests.fixtures.faults",
    "tests.fixtures.mail",
    "tests.fixtures.webhooks",
]

POSTGRES_ADMIN_URL = os.environ.get(
    "REGISTRY_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
DATABASES = os.environ.get("REGISTRY_TEST_DATABASES", "sqlite,postgresql").split(",")


def postgres_admin_engine() -> Engine:
    """An engine on the admin database that keeps no connection between uses, so one that a
    PostgreSQL restart killed is never reused (the session's teardown must still work)."""
    return create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A private PostgreSQL database for this test session (dropped at the end)."""
    name = f"registry_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = postgres_admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
            {"n": name},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty schema on SQLite or PostgreSQL."""
    from registry.db import Base, make_engine
    from registry.models import AuditHead

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'registry.db'}"
    else:
        url = request.getfixturevalue("postgres_database")
    engine = make_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(AuditHead.__table__.insert().values(id=1, seq=0, hash="0" * 64))
    engine.dispose()
    yield url


def make_settings(database_url: str, tmp_path: Path, **overrides: Any) -> Any:
    """Settings for a test registry: its own instance folder, no rate limits, http cookies."""
    from registry.config import Settings

    return Settings.from_env(
        {},
        instance_path=tmp_path / "instance",
        database_url=database_url,
        secret_key="test-secret-key-0123456789",
        session_cookie_secure=False,
        ratelimit_enabled=False,
        **overrides,
    )


@pytest.fixture
def settings(database_url: str, tmp_path: Path):
    return make_settings(database_url, tmp_path, public_url="http://127.0.0.1")


@pytest.fixture
def app(settings):
    from registry.app import create_app

    app = create_app(settings=settings)
    app.config["TESTING"] = True
    yield app
    app.extensions["registry"].engine.dispose()


@pytest.fixture
def registry(app):
    return app.extensions["registry"]


@pytest.fixture
def client(app):
    return app.test_client()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """The app served by a threaded WSGI server on 127.0.0.1 (a real HTTP socket)."""

    def __init__(self, app) -> None:
        from werkzeug.serving import make_server

        self.app = app
        self.port = free_port()
        self.server = make_server("127.0.0.1", self.port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(app) -> Iterator[LiveServer]:
    server = LiveServer(app)
    yield server
    server.stop()
