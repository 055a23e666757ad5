"""Canonical addresses: one account per mailbox however it is typed, no invisible or
look-alike characters, and a migration that reports (never merges) old collisions."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, text

from registry import migrate
from registry.accounts.addresses import AddressRefused, email_key, normalize_email
from registry.db import Base, make_engine


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Ada@Example.ORG", "ada@example.org"),
        ("  ada@example.org\t", "ada@example.org"),
        ("\uff41\uff44\uff41@example.org", "ada@example.org"),  # fullwidth letters (NFKC)
        ("\U0001d41a\U0001d41d\U0001d41a@example.org", "ada@example.org"),  # mathematical bold
        ("jürgen@münchen.de", "jürgen@münchen.de"),  # one script each: fine
        ("иван@почта.рф", "иван@почта.рф"),
        ("山田@例え.jp", "山田@例え.jp"),
    ],
)
def test_addresses_are_normalized(typed: str, stored: str) -> None:
    assert normalize_email(typed) == stored


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        ("ada\u200b@example.org", "U+200B"),  # zero-width space
        ("ada@example.org\u200d", "U+200D"),  # zero-width joiner
        ("ada\ufeff@example.org", "U+FEFF"),  # byte order mark
        ("ada\x00@example.org", "U+0000"),
        ("ada\x1b@example.org", "U+001B"),
        ("\u202eada@example.org", "U+202E"),  # right-to-left override
        ("ada\u2066@example.org", "U+2066"),  # bidi isolate
        ("a da@example.org", "U+0020"),
        ("\u0430da@example.org", "mixes Cyrillic and Latin letters in its local part"),
        ("ada@ex\u0430mple.org", "mixes Cyrillic and Latin letters in its domain"),
        ("ada@\u03b5xample.org", "mixes Greek and Latin letters in its domain"),
        ("ada@xn--exmple-4nf.org", "in its domain"),  # the Cyrillic look-alike in punycode
        ("not-an-address", "is not a valid email address"),
        ("a" * 65 + "@example.org", "is not a valid email address"),
    ],
)
def test_invisible_and_mixed_script_addresses_are_refused(typed: str, why: str) -> None:
    with pytest.raises(AddressRefused, match=why.replace("(", r"\(").replace("+", r"\+")):
        normalize_email(typed)


def test_case_and_compatibility_forms_share_one_key() -> None:
    keys = {email_key(normalize_email(a)) for a in ("Ada@Example.org", "\uff21da@example.org")}
    assert keys == {"ada@example.org"}
    assert email_key("ada@" + "münchen".encode("idna").decode() + ".de") == email_key(
        "ada@münchen.de"
    )


@pytest.fixture
def old_schema(database_url: str) -> str:
    """A database at the schema before identity (revision a21a8ba8aa2e)."""
    engine = make_engine(database_url)
    Base.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    engine.dispose()
    migrate.upgrade(database_url, "a21a8ba8aa2e")
    return database_url


def test_the_migration_reports_colliding_accounts_and_merges_none(
    old_schema: str, capfd, tmp_path, monkeypatch
) -> None:
    from registry.accounts.services import find_user_by_email
    from registry.cli import main
    from registry.context import build_registry
    from tests.conftest import make_settings

    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rows = [
        (1, "ana@hosp.org"),
        (2, "\uff41na@hosp.org"),  # registered before addresses were canonical
        (3, "ana@hosp.org\u200b"),
        (4, "ben@hosp.org"),
        (5, "b\u0435n@hosp.org"),  # Cyrillic e: a different key, but refused today
    ]
    engine = make_engine(old_schema)
    with engine.begin() as conn:
        for uid, email in rows:
            conn.execute(
                text(
                    "INSERT INTO users (id, email, display_name, password_hash, "
                    "is_registry_admin, is_active, created_at, session_generation) "
                    "VALUES (:id, :email, 'x', '!', false, true, :now, 0)"
                ),
                {"id": uid, "email": email, "now": now},
            )
    capfd.readouterr()
    migrate.upgrade(old_schema)
    report = capfd.readouterr().err
    assert "accounts #2 '\uff41na@hosp.org', #3 'ana@hosp.org\\u200b' collide with #1" in report
    assert "they were not merged" in report
    assert "account #5 'b\u0435n@hosp.org': its address mixes Cyrillic and Latin" in report
    assert "#4" not in report
    with engine.connect() as conn:
        keys = dict(list(conn.execute(text("SELECT id, email_key FROM users")).tuples()))
        verified = conn.execute(
            text("SELECT count(*) FROM users WHERE email_verified_at IS NOT NULL")
        )
        assert verified.scalar() == 0  # nobody's old address counts as proven
    assert keys[1] == "ana@hosp.org" and keys[2] is None and keys[3] is None
    assert keys[4] == "ben@hosp.org"
    assert "uq_users_email_key" in {
        c["name"] for c in inspect(engine).get_unique_constraints("users")
    }
    engine.dispose()
    migrate.check(old_schema)

    registry = build_registry(make_settings(old_schema, tmp_path))
    with registry.sessions() as db:
        assert find_user_by_email(db, "ANA@hosp.org").id == 1
        assert find_user_by_email(db, "\uff41na@hosp.org").id == 1  # the canonical owner
    registry.engine.dispose()

    monkeypatch.setenv("REGISTRY_DATABASE_URL", old_schema)
    monkeypatch.setenv("REGISTRY_INSTANCE_PATH", str(tmp_path / "instance"))
    checked = CliRunner().invoke(main, ["check-addresses"])
    assert checked.exit_code == 1
    assert "collide with #1" in checked.output and "account #5" in checked.output
