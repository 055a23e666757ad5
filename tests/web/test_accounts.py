"""Account pages over HTTP: register, log in and out, password change, API tokens."""

from __future__ import annotations

import re

from registry.unit_of_work import unit_of_work
from tests.web.test_security import csrf_token, log_in


def test_register_shows_each_problem_beside_its_field_then_logs_in(client):
    token = csrf_token(client, "/register")
    response = client.post(
        "/register", data={"csrf_token": token, "email": "not-an-email", "password": "short"}
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert re.search(r'id="email-error">This is not a valid email address', page)
    assert re.search(r'id="password-error">This must be at least 10 characters', page)
    assert 'id="accept_terms-error"' in page
    assert 'value="not-an-email"' in page  # what the user typed stays in the form

    response = client.post(
        "/register",
        data={
            "csrf_token": token,
            "email": "new@example.org",
            "password": "long-enough-pw",
            "display_name": "Newcomer",
            "accept_terms": "yes",
        },  # fmt: skip
    )
    assert response.status_code == 302 and response.headers["Location"] == "/account"
    profile = client.get("/account").get_data(as_text=True)
    assert "Newcomer" in profile and 'data-tier="credentialed"' in profile
    assert "Not a credentialed researcher" in profile


def test_wrong_password_is_refused_and_next_is_kept_on_this_site(client, make_account):
    account = make_account("a@example.org")
    token = csrf_token(client)
    response = client.post(
        "/login", data={"csrf_token": token, "email": account.email, "password": "wrong-password"}
    )
    assert response.status_code == 401
    assert "Wrong email or password" in response.get_data(as_text=True)

    response = client.post(
        "/login",
        data={
            "csrf_token": token,
            "email": account.email,
            "password": account.password,
            "next": "https://evil.example/steal",
        },  # fmt: skip
    )
    assert response.headers["Location"] == "/"


def test_protected_page_redirects_to_login_and_back(client, make_account):
    account = make_account("b@example.org")
    response = client.get("/account/tokens")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/account/tokens"
    token = csrf_token(client, "/login?next=/account/tokens")
    response = client.post(
        "/login",
        data={
            "csrf_token": token,
            "email": account.email,
            "password": account.password,
            "next": "/account/tokens",
        },  # fmt: skip
    )
    assert response.headers["Location"] == "/account/tokens"


def test_logout_ends_the_session_even_for_a_copied_cookie(app, client, make_account):
    account = make_account("c@example.org")
    token = log_in(client, account)
    stolen = client.get_cookie("session").value
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/account").status_code == 302

    other = app.test_client()
    other.set_cookie("session", stolen)
    assert other.get("/account").status_code == 302


def test_password_change_keeps_this_session_and_checks_the_current_one(client, make_account):
    account = make_account("d@example.org")
    token = log_in(client, account)
    response = client.post(
        "/account/password",
        data={"csrf_token": token, "current_password": "nope", "new_password": "another-long-one"},
    )
    assert response.status_code == 403
    assert 'id="current_password-error"' in response.get_data(as_text=True)

    response = client.post(
        "/account/password",
        data={
            "csrf_token": token,
            "current_password": account.password,
            "new_password": "another-long-one",
        },  # fmt: skip
    )
    assert response.status_code == 302
    assert client.get("/account").status_code == 200


def test_token_is_shown_once_listed_by_prefix_and_revocable(client, make_account):
    account = make_account("e@example.org")
    token = log_in(client, account)
    response = client.post(
        "/account/tokens",
        data={"csrf_token": token, "name": "workstation", "scope": "read", "expires_in_days": "30"},
    )
    assert response.status_code == 201
    secret = re.search(r'id="new-token">(rgr_[^<]+)<', response.get_data(as_text=True)).group(1)
    listing = client.get("/account/tokens").get_data(as_text=True)
    assert secret not in listing and secret[:12] in listing and "workstation" in listing

    assert (
        client.get("/api/whoami-v2", headers={"Authorization": f"Bearer {secret}"}).status_code
        == 200
    )
    token_id = re.search(r"/account/tokens/(\d+)/revoke", listing).group(1)
    response = client.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": token})
    assert response.status_code == 302
    assert "revoked" in client.get("/account/tokens").get_data(as_text=True)
    assert (
        client.get("/api/whoami-v2", headers={"Authorization": f"Bearer {secret}"}).status_code
        == 401
    )


def test_token_form_problems_are_shown(client, make_account):
    token = log_in(client, make_account("f@example.org"))
    response = client.post(
        "/account/tokens",
        data={"csrf_token": token, "name": "", "scope": "root", "expires_in_days": "9999"},
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="name-error"' in page and 'id="scope-error"' in page
    assert 'id="expires_in_days-error"' in page


def test_another_users_token_cannot_be_revoked(app, client, make_account, registry):
    from registry.accounts import services, tokens

    make_account("owner@example.org")
    with unit_of_work(registry.sessions) as db:
        owner = services.find_user_by_email(db, "owner@example.org")
        row, _secret = tokens.create_token(
            db, owner, name="x", scope="read", expires_in_days=1, default_days=30,
            max_days=365, now=registry.now(),
        )  # fmt: skip
        token_id = row.id
    token = log_in(client, make_account("intruder@example.org"))
    response = client.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": token})
    assert response.status_code == 403
