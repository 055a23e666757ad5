"""Rate limits: one hospital NAT is not one lock (issue 18)."""

from __future__ import annotations

import dataclasses

from tests.fixtures.principals import PASSWORD, People

NAT = {"REMOTE_ADDR": "203.0.113.9"}


def _limited_app(settings):
    from registry.app import create_app

    return create_app(settings=dataclasses.replace(settings, ratelimit_enabled=True))


def test_failed_logins_behind_one_address_lock_only_that_account(settings) -> None:
    app = _limited_app(settings)
    people = People(app.extensions["registry"])
    people.user("ada@example.org")
    people.user("admin@example.org", admin=True)
    client = app.test_client()
    wrong = {"email": "ada@example.org", "password": "wrong-password!"}
    codes = [
        client.post("/api/v1/login", json=wrong, environ_base=NAT).status_code for _ in range(11)
    ]
    assert codes == [401] * 10 + [429]
    locked = client.post("/api/v1/login", json=wrong, environ_base=NAT)
    assert "for this account" in locked.headers["X-Error-Message"]
    # The admin behind the same NAT still gets in, in the API and the web form alike.
    admin = {"email": "admin@example.org", "password": PASSWORD}
    assert client.post("/api/v1/login", json=admin, environ_base=NAT).status_code == 200
    app.config["WTF_CSRF_METHODS"] = []
    web = client.post("/login", data=admin, environ_base=NAT)
    assert web.status_code == 302
    # The locked account stays locked from the web form too (one counter per account).
    assert client.post("/login", data=wrong, environ_base=NAT).status_code == 429


def test_one_address_trying_many_accounts_meets_a_higher_ceiling(settings, monkeypatch) -> None:
    from registry import ratelimit

    login = ratelimit.LIMITS["login"]
    assert _first_count(login.per_address) >= 10 * _first_count(login.per_account or "")
    # The shipped ceiling is 100 a minute; a smaller one keeps the test fast (argon2).
    monkeypatch.setitem(
        ratelimit.LIMITS, "login", dataclasses.replace(login, per_address="12 per minute")
    )
    client = _limited_app(settings).test_client()
    codes = []
    for i in range(13):
        body = {"email": f"guess{i}@example.org", "password": "wrong-password!"}
        codes.append(client.post("/api/v1/login", json=body, environ_base=NAT).status_code)
    assert codes == [401] * 12 + [429]
    refused = client.post(
        "/api/v1/login", json={"email": "x@example.org", "password": "y"}, environ_base=NAT
    )
    assert "from your address" in refused.headers["X-Error-Message"]


def _first_count(spec: str) -> int:
    return int(spec.split()[0]) if spec else 0


def test_successful_logins_do_not_count(settings) -> None:
    app = _limited_app(settings)
    People(app.extensions["registry"]).user("ada@example.org")
    good = {"email": "ada@example.org", "password": PASSWORD}
    codes = {
        app.test_client().post("/api/v1/login", json=good, environ_base=NAT).status_code
        for _ in range(11)
    }
    assert codes == {200}
