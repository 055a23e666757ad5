"""Accounts: registration, login sessions, logout and password changes, admin endpoints,
``create-admin``, API tokens (hash-only storage, refusal messages) and rate limits."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import socket

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from registry.unit_of_work import unit_of_work
from tests.fixtures.mail import mailed_link
from tests.fixtures.principals import PASSWORD

NEW_PASSWORD = "another-long-password-42"
pytestmark = pytest.mark.usefixtures("cheap_passwords")


def _register(api, email: str = "ada@example.org", **extra):
    body = {"email": email, "password": PASSWORD, "display_name": "Ada", "accept_terms": True}
    body.update(extra)
    return api("POST", "/api/v1/register", json=body)


def _events(registry, tag: str):
    from registry.models import AuditEvent

    with unit_of_work(registry.sessions) as db:
        return db.scalars(select(AuditEvent).where(AuditEvent.tag == tag)).all()


def test_register_login_me_logout(api, client, registry) -> None:
    created = _register(api)
    assert created.status_code == 201, created.json
    assert created.json["email"] == "ada@example.org"
    assert "password" not in created.json and "password_hash" not in created.json
    from registry.models import User

    with unit_of_work(registry.sessions) as db:
        stored = db.scalar(select(User.password_hash).where(User.email == "ada@example.org"))
    assert stored.startswith("$argon2id$") and PASSWORD not in stored

    assert api("GET", "/api/v1/me").status_code == 401
    login = api("POST", "/api/v1/login", json={"email": "ADA@example.org", "password": PASSWORD})
    assert login.status_code == 200
    first_cookie = client.get_cookie("session").value
    me = api("GET", "/api/v1/me")
    assert me.status_code == 200
    assert me.json["email"] == "ada@example.org"
    assert me.json["auth"]["type"] == "session"
    # Cookie-authenticated writes need the CSRF header (the API hands the token out).
    assert client.post("/api/v1/me/terms").status_code == 400
    assert me.json["tiers"]["open"]["eligible"] is True
    credentialed = me.json["tiers"]["credentialed"]
    assert credentialed["eligible"] is False
    assert {m["requirement"] for m in credentialed["missing"]} == {
        "email-verified",  # a new account's address is not proven yet
        "credentialed",
        "training:citi-dsor",
        "dua-signed",
    }

    # Logging in again rotates the session id.
    api("POST", "/api/v1/login", json={"email": "ada@example.org", "password": PASSWORD})
    assert client.get_cookie("session").value != first_cookie

    stolen = client.get_cookie("session").value
    assert api("POST", "/api/v1/logout").status_code == 200
    assert api("GET", "/api/v1/me").status_code == 401
    # A copy of the cookie taken before logout no longer works either.
    client.set_cookie("session", stolen)
    assert api("GET", "/api/v1/me").status_code == 401
    assert [e.tag for e in _events(registry, "account:login")] == ["account:login"] * 2


def test_password_change_ends_other_sessions(app, api, registry) -> None:
    _register(api)
    other = app.test_client()
    other.post("/api/v1/login", json={"email": "ada@example.org", "password": PASSWORD})
    assert other.get("/api/v1/me").status_code == 200

    api("POST", "/api/v1/login", json={"email": "ada@example.org", "password": PASSWORD})
    wrong = api(
        "POST",
        "/api/v1/me/password",
        json={"current_password": "nope-nope-nope", "new_password": NEW_PASSWORD},
    )
    assert wrong.status_code == 403
    changed = api(
        "POST",
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 200
    assert api("GET", "/api/v1/me").status_code == 200  # this browser stays logged in
    assert api("POST", "/api/v1/me/terms").status_code == 200
    assert other.get("/api/v1/me").status_code == 401  # the other one is logged out
    old = api("POST", "/api/v1/login", json={"email": "ada@example.org", "password": PASSWORD})
    assert old.status_code == 401
    new = api("POST", "/api/v1/login", json={"email": "ada@example.org", "password": NEW_PASSWORD})
    assert new.status_code == 200


def test_login_failures_are_audited_with_one_message(api, registry) -> None:
    _register(api)
    wrong = api("POST", "/api/v1/login", json={"email": "ada@example.org", "password": "x" * 12})
    unknown = api("POST", "/api/v1/login", json={"email": "bob@example.org", "password": "x" * 12})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json["error"] == unknown.json["error"]
    reasons = [e.details["reason"] for e in _events(registry, "account:login-failed")]
    assert reasons == ["wrong-password", "unknown-account"]


def test_registration_reports_every_problem(api) -> None:
    bad = api(
        "POST",
        "/api/v1/register",
        json={"email": "not-an-email", "password": "short", "accept_terms": False},
    )
    assert bad.status_code == 422
    fields = {p["field"] for p in bad.json["problems"]}
    assert fields == {"email", "password", "accept_terms"}
    assert _register(api).status_code == 201
    again = _register(api, email="Ada@Example.org")
    assert again.status_code == 409
    assert "/login" in again.json["error"]
    not_json = api("POST", "/api/v1/register", data="email=a")
    assert not_json.status_code == 400


def test_create_admin_cli_then_admin_endpoints(api, registry, settings, monkeypatch) -> None:
    from registry.cli import main

    monkeypatch.setenv("REGISTRY_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REGISTRY_INSTANCE_PATH", str(settings.instance_path))
    monkeypatch.setenv("REGISTRY_SECRET_KEY", settings.secret_key)
    result = CliRunner().invoke(main, ["create-admin", "root@example.org"], input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "created registry admin root@example.org" in result.output

    assert (
        api(
            "POST", "/api/v1/login", json={"email": "root@example.org", "password": PASSWORD}
        ).status_code
        == 200
    )
    made = api("POST", "/api/v1/institutions", json={"slug": "stanford", "name": "Stanford"})
    assert made.status_code == 201
    _register(api, email="pub@example.org")
    token = mailed_link(registry, "pub@example.org", "/account/verify/").rsplit("/", 1)[1]
    assert api("POST", "/api/v1/verify-email", json={"token": token}).status_code == 200
    member = api(
        "PUT", "/api/v1/institutions/stanford/members/pub@example.org", json={"role": "publisher"}
    )
    assert member.status_code == 200
    assert member.json["role"] == "publisher"
    bad_role = api(
        "PUT", "/api/v1/institutions/stanford/members/pub@example.org", json={"role": "owner"}
    )
    assert bad_role.status_code == 422
    members = api("GET", "/api/v1/institutions/stanford/members")
    assert [m["email"] for m in members.json] == ["pub@example.org"]

    # A publisher is not an institution admin and not a registry admin.
    api("POST", "/api/v1/logout")
    api("POST", "/api/v1/login", json={"email": "pub@example.org", "password": PASSWORD})
    assert api("GET", "/api/v1/institutions/stanford/members").status_code == 403
    refused = api("POST", "/api/v1/institutions", json={"slug": "evil", "name": "Evil"})
    assert refused.status_code == 403
    assert "registry administrators" in refused.json["error"]

    again = CliRunner().invoke(main, ["create-admin", "pub@example.org"])
    assert again.exit_code == 0 and "now a registry admin" in again.output


# Tokens ------------------------------------------------------------------------------------


def _dump_text(registry) -> str:
    """Every value of every column of every table, as text."""
    from registry.db import Base

    parts = []
    with registry.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(table.select()):
                parts.extend(str(value) for value in row)
    return "\n".join(parts)


def test_token_plaintext_is_shown_once_and_never_stored(api, people, registry) -> None:
    uid = people.user("ada@example.org")
    admin_token = people.token(uid, "admin", days=365)  # outlives the default 90 days
    made = api(
        "POST", "/api/v1/tokens", token=admin_token, json={"name": "laptop", "scope": "read"}
    )
    assert made.status_code == 201
    secret = made.json["token"]
    assert secret.startswith("rgr_") and len(secret) >= 4 + 43
    assert made.json["prefix"] == secret[:12]
    expires = dt.datetime.fromisoformat(made.json["expires_at"].replace("Z", "+00:00"))
    assert abs(expires - registry.now() - dt.timedelta(days=90)) < dt.timedelta(minutes=1)

    listed = api("GET", "/api/v1/tokens", token=secret)
    assert listed.status_code == 200
    assert all("token" not in t for t in listed.json)

    dump = _dump_text(registry)
    for plaintext in (secret, admin_token):
        assert plaintext not in dump
        assert plaintext[4:] not in dump
        assert plaintext[12:30] not in dump


def test_whoami_v2_speaks_hugging_face(api, people) -> None:
    uid = people.user("ada@example.org", institution="stanford", role="publisher")
    token = people.token(uid, "write")
    who = api("GET", "/api/whoami-v2", token=token)
    assert who.status_code == 200
    assert who.json["name"] == "ada"
    assert who.json["auth"]["accessToken"]["role"] == "write"
    assert who.json["auth"]["accessToken"]["displayName"] == "test-write"
    assert who.json["orgs"][0]["name"] == "stanford"
    assert api("GET", "/api/whoami-v2").status_code == 401


def test_bad_tokens_are_refused_with_clear_messages(api, people, registry) -> None:
    uid = people.user("ada@example.org")
    admin_token = people.token(uid, "admin")
    read_token = people.token(uid, "read")

    tampered = read_token[:-4] + ("AAAA" if not read_token.endswith("AAAA") else "BBBB")
    answer = api("GET", "/api/v1/me", token=tampered)
    assert answer.status_code == 401
    assert "not known to this registry" in answer.headers["X-Error-Message"]

    foreign = api("GET", "/api/v1/health", token="hf_abcdefghijklmnop")
    assert foreign.status_code == 401
    assert "start with 'rgr_'" in foreign.json["error"]

    basic = api("GET", "/api/v1/me", headers={"Authorization": "Basic YTpi"})
    assert basic.status_code == 401 and "Bearer" in basic.json["error"]

    scope = api("POST", "/api/v1/credentials", token=read_token, json={})
    assert scope.status_code == 403
    assert "scope 'read'" in scope.json["error"] and "'write' token" in scope.json["error"]
    assert scope.json["missing"][0]["fix_url"] == "/account/tokens"
    write_token = people.token(uid, "write")
    no_admin = api("POST", "/api/v1/tokens", token=write_token, json={"name": "x", "scope": "read"})
    assert no_admin.status_code == 403

    listed = api("GET", "/api/v1/tokens", token=admin_token).json
    read_id = next(t["id"] for t in listed if t["scope"] == "read")
    assert api("DELETE", f"/api/v1/tokens/{read_id}", token=admin_token).status_code == 200
    revoked = api("GET", "/api/v1/me", token=read_token)
    assert revoked.status_code == 401
    assert "was revoked on" in revoked.json["error"]

    other = people.user("bob@example.org")
    bob_token = people.token(other, "admin")
    stranger = api("DELETE", f"/api/v1/tokens/{read_id}", token=bob_token)
    assert stranger.status_code == 403

    later = registry.now() + dt.timedelta(days=31)
    registry.clock = lambda: later
    expired = api("GET", "/api/v1/me", token=admin_token)
    assert expired.status_code == 401
    assert "expired on" in expired.json["error"]
    assert [e.tag for e in _events(registry, "token:revoke")] == ["token:revoke"]


def test_token_expiry_limits_and_last_use(api, people, registry, app) -> None:
    uid = people.user("ada@example.org")
    token = people.token(uid, "admin")
    too_long = api(
        "POST",
        "/api/v1/tokens",
        token=token,
        json={
            "name": "x",
            "scope": "read",
            "expires_in_days": registry.settings.token_max_days + 1,
        },
    )
    assert too_long.status_code == 422
    assert too_long.json["problems"][0]["field"] == "expires_in_days"
    assert (
        api("POST", "/api/v1/tokens", token=token, json={"name": "x", "scope": "root"}).status_code
        == 422
    )

    from registry.models import ApiToken

    api("GET", "/api/v1/me", token=token)
    with unit_of_work(registry.sessions) as db:
        used = db.scalar(select(ApiToken).where(ApiToken.user_id == uid))
        assert used.last_used_at is not None


# Rate limits ------------------------------------------------------------------------------

# A database of its own, so a test run never writes into the one an operator's Redis uses.
REDIS_TEST_URL = os.environ.get("REGISTRY_TEST_REDIS", "redis://127.0.0.1:6379/11")


def _redis_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_login_registration_and_tokens_are_rate_limited(settings, storage, people) -> None:
    from registry.app import create_app

    url = "memory://"
    if storage == "redis":
        if not _redis_up():
            if os.environ.get("CI"):  # CI starts Redis (.ci/run): a missing one is a failure
                pytest.fail("no Redis on 127.0.0.1:6379")
            pytest.skip("no Redis on 127.0.0.1:6379")
        import redis

        url = REDIS_TEST_URL
        # The counters of earlier runs live up to an hour: this test's database starts empty.
        redis.Redis.from_url(url).flushdb()
    address = "10.0.0.1"
    limited = dataclasses.replace(settings, ratelimit_enabled=True, ratelimit_storage_url=url)
    app = create_app(settings=limited)
    client = app.test_client()
    env = {"REMOTE_ADDR": address}
    body = {"email": "nobody@example.org", "password": "wrong-password!"}
    codes = [
        client.post("/api/v1/login", json=body, environ_base=env).status_code for _ in range(11)
    ]
    assert codes[:10] == [401] * 10
    assert codes[10] == 429
    blocked = client.post("/api/v1/login", json=body, environ_base=env)
    assert blocked.headers["X-Error-Code"] == "TooManyRequests"
    assert "Too many failed logins" in blocked.headers["X-Error-Message"]
    assert "Retry-After" in blocked.headers
    # The lock is the account's (from any address); other accounts behind the same address
    # are not affected (tests/registry/test_ratelimit.py has the NAT case in full).
    elsewhere = client.post("/api/v1/login", json=body, environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert elsewhere.status_code == 429
    other = {"email": "somebody@example.org", "password": "wrong-password!"}
    assert client.post("/api/v1/login", json=other, environ_base=env).status_code == 401

    registrations = [
        client.post(
            "/api/v1/register",
            json={"email": f"u{i}@example.org", "password": PASSWORD, "accept_terms": True},
            environ_base=env,
        ).status_code
        for i in range(6)
    ]
    assert registrations == [201] * 5 + [429]
    welcomed = client.post(
        "/api/v1/register",
        json={"email": "late@example.org", "password": PASSWORD, "accept_terms": True},
        environ_base={"REMOTE_ADDR": "10.7.7.7"},
    )
    assert welcomed.status_code == 201
    assert "Retry-After" not in welcomed.headers  # a success never asks a client to wait

    # The web UI's login form shares the account's counter (CSRF is the web UI's own test).
    app.config["WTF_CSRF_METHODS"] = []
    page = {"REMOTE_ADDR": "10.8.8.8"}
    assert client.get("/login", environ_base=page).status_code == 200
    web = client.post("/login", data=body, environ_base=page)
    assert web.status_code == 429
    app.extensions["registry"].engine.dispose()
