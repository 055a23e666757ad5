"""The test fixtures themselves hold up when the services under them misbehave."""

from __future__ import annotations

from sqlalchemy import text

from tests.conftest import postgres_admin_engine


def test_the_admin_engine_survives_its_connection_being_killed() -> None:
    """What a PostgreSQL restart does to a pooled connection: the next use must work."""
    admin = postgres_admin_engine()
    with admin.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    killer = postgres_admin_engine()
    with killer.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    with admin.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
    admin.dispose()
    killer.dispose()
