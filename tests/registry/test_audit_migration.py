"""Migration 14 on a database with history: events of the old hash chain become pending,
the first seal orders them as they were, and a downgrade chains everything again."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic import command
from sqlalchemy import inspect, text

from registry import migrate
from registry.db import Base, make_engine
from tests.conftest import make_settings
from tests.registry.audit_helpers import seal, sealed_events


@pytest.fixture
def old_database(database_url: str) -> str:
    engine = make_engine(database_url)
    Base.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    engine.dispose()
    migrate.upgrade(database_url, "a21a8ba8aa2e")
    engine = make_engine(database_url)
    with engine.begin() as conn:
        prev = "0" * 64
        for seq in (1, 2, 3):
            at = dt.datetime(2026, 11, 1, 12, seq, tzinfo=dt.UTC)
            conn.execute(
                text(
                    "INSERT INTO audit_events (seq, created_at, tag, actor, target, ip, "
                    "user_agent, details, prev_hash, hash) VALUES (:seq, :at, "
                    "'account:login', 'old@example.org', :target, '', '', '{}', :prev, :hash)"
                ),
                {
                    "seq": seq,
                    "at": at,
                    "target": f"old-{seq}",
                    "prev": prev,
                    "hash": f"{seq:064x}",
                },
            )
            prev = f"{seq:064x}"
    engine.dispose()
    return database_url


def test_old_history_is_sealed_in_its_order_and_chained_again_on_downgrade(old_database, tmp_path):
    from registry.context import build_registry

    migrate.upgrade(old_database)
    registry = build_registry(make_settings(old_database, tmp_path))
    columns = {c["name"] for c in inspect(registry.engine).get_columns("audit_events")}
    assert "prev_hash" not in columns and "hash" not in columns
    with registry.engine.connect() as conn:
        assert (
            conn.execute(text("SELECT count(*) FROM audit_events WHERE seq IS NULL")).scalar() == 3
        )
    seal(registry)  # creates the signing key, itself an event sealed after them
    sealed = sealed_events(registry)
    assert [(e.target, e.seq) for e in sealed[:3]] == [("old-1", 1), ("old-2", 2), ("old-3", 3)]
    assert [e.tag for e in sealed[3:]] == ["signing-key:activate"]
    registry.engine.dispose()

    command.downgrade(migrate.alembic_config(old_database), "a21a8ba8aa2e")
    engine = make_engine(old_database)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, seq, prev_hash, hash FROM audit_events ORDER BY seq")
        ).all()
        head = conn.execute(text("SELECT seq, hash FROM audit_head WHERE id = 1")).one()
    engine.dispose()
    assert [r.seq for r in rows] == [1, 2, 3, 4]
    assert rows[0].prev_hash == "0" * 64
    assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:], strict=False))
    assert (head.seq, head.hash) == (4, rows[-1].hash)
    migrate.upgrade(old_database)  # and forward again
