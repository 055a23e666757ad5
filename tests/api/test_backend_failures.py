"""Backend failures answer a clear status, never 500 (issue 15)."""

from __future__ import annotations

import dataclasses

import pytest

from tests.conftest import free_port
from tests.web.test_security import csrf_token

BODY = {"email": "nobody@example.org", "password": "wrong-password!"}


@pytest.mark.parametrize("fail_open", [False, True], ids=["closed", "open"])
def test_redis_down_answers_503_on_limited_routes_or_lets_them_through(settings, fail_open):
    from registry.app import create_app

    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    limited = dataclasses.replace(
        settings, ratelimit_enabled=True, ratelimit_storage_url=down, ratelimit_fail_open=fail_open
    )
    client = create_app(settings=limited).test_client()
    login = client.post("/api/v1/login", json=BODY)
    page = client.post("/login", data={**BODY, "csrf_token": csrf_token(client, "/login")})
    if fail_open:
        assert login.status_code == 401
        assert page.status_code < 500
    else:
        assert login.status_code == 503
        assert login.headers["X-Error-Code"] == "ServiceUnavailable"
        assert "rate limits" in login.get_json()["error"]
        assert page.status_code == 503
    assert client.get("/api/v1/ping").status_code == 200  # routes without limits are served


def test_a_value_the_database_refuses_is_a_400(client, people):
    token = people.token(people.user("datapoint@example.org", admin=True), "admin")
    response = client.get(
        "/api/v1/audit?actor=" + "9" * 30, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code < 500
