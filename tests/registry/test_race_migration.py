"""Migration 13 on a database that races already spoiled: duplicates are closed (the
oldest of each kept, with a reason), then the partial unique indexes hold."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from registry import migrate
from registry.db import Base, make_engine

AT = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)


@pytest.fixture
def spoiled_database(database_url: str) -> str:
    engine = make_engine(database_url)
    Base.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    engine.dispose()
    migrate.upgrade(database_url, "12c0ffee1d01")
    t = Base.metadata.tables
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(t["institutions"].insert().values(id=1, slug="mgh", name="MGH"))
        for uid in (1, 2):
            conn.execute(
                t["users"]
                .insert()
                .values(
                    id=uid,
                    email=f"u{uid}@x.org",
                    display_name="u",
                    password_hash="!",
                    created_at=AT,
                )
            )
        conn.execute(
            t["models"]
            .insert()
            .values(
                id=1,
                institution_id=1,
                namespace="mgh",
                name="m",
                tier="contributor-review",
                access_fields=[],
                created_at=AT,
            )
        )
        for rid in (1, 2, 3):
            conn.execute(
                t["access_requests"]
                .insert()
                .values(
                    id=rid,
                    model_id=1,
                    user_id=1,
                    fields={},
                    status="pending",
                    reason="",
                    created_at=AT,
                )
            )
        for aid, status in ((1, "accepted"), (2, "accepted"), (3, "pending"), (4, "pending")):
            conn.execute(
                t["credential_applications"]
                .insert()
                .values(
                    id=aid,
                    user_id=1 if aid < 4 else 2,
                    full_name="A",
                    affiliation="B",
                    reference_name="C",
                    reference_email="c@x.org",
                    research_summary="D",
                    status=status,
                    reason="",
                    created_at=AT,
                )
            )
        for vid in (1, 2):
            conn.execute(
                t["versions"]
                .insert()
                .values(
                    id=vid,
                    model_id=1,
                    state="in-review",
                    requested_tag="v1",
                    card_data={},
                    reject_reason="",
                    withdrawn_reason="",
                    validation_report=[],
                    card_text="",
                    created_at=AT,
                )
            )
    engine.dispose()
    return database_url


def test_duplicates_are_closed_then_the_indexes_hold(spoiled_database: str) -> None:
    migrate.upgrade(spoiled_database)
    t = Base.metadata.tables
    engine = make_engine(spoiled_database)
    with engine.connect() as conn:
        requests = conn.execute(
            select(t["access_requests"].c.id, t["access_requests"].c.status).order_by(
                t["access_requests"].c.id
            )
        ).all()
        assert [s for _, s in requests] == ["pending", "rejected", "rejected"]
        apps = (
            conn.execute(
                select(t["credential_applications"].c.status).order_by(
                    t["credential_applications"].c.id
                )
            )
            .scalars()
            .all()
        )
        assert apps == ["accepted", "revoked", "rejected", "pending"]
        versions = conn.execute(
            select(t["versions"].c.state, t["versions"].c.reject_reason).order_by(
                t["versions"].c.id
            )
        ).all()
        assert versions[0].state == "in-review" and versions[1].state == "rejected"
        assert "migration 13" in versions[1].reject_reason
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            t["access_requests"]
            .insert()
            .values(model_id=1, user_id=1, fields={}, status="pending", reason="", created_at=AT)
        )
    engine.dispose()
