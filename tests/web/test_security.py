"""CSRF on every state change made with the session cookie, strict CSP, cookie flags, and
no inline script or style anywhere in the templates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from registry.unit_of_work import unit_of_work
from registry.web.security import CONTENT_SECURITY_POLICY

TEMPLATES = Path(__file__).resolve().parents[2] / "registry" / "web" / "templates"


def csrf_token(client, path: str = "/login") -> str:  # type: ignore[no-untyped-def]
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def log_in(client, account) -> str:  # type: ignore[no-untyped-def]
    token = csrf_token(client)
    response = client.post(
        "/login", data={"csrf_token": token, "email": account.email, "password": account.password}
    )
    assert response.status_code == 302
    return csrf_token(client, "/account")


def test_form_post_without_csrf_token_is_refused_and_changes_nothing(client, make_account):
    researcher = make_account("r@example.org")
    log_in(client, researcher)
    form = {
        "full_name": "R",
        "affiliation": "Lab",
        "reference_name": "Ref",
        "reference_email": "ref@example.org",
        "research_summary": "Synthetic data.",
    }
    response = client.post("/account/credentials", data=form)
    assert response.status_code == 400
    assert "reload the page and try again" in response.get_data(as_text=True)
    assert "Application status" not in client.get("/account/credentials").get_data(as_text=True)

    response = client.post("/account/credentials", data={**form, "csrf_token": "forged"})
    assert response.status_code == 400


def test_login_form_needs_a_csrf_token_too(client, make_account):
    account = make_account("a@example.org")
    response = client.post("/login", data={"email": account.email, "password": account.password})
    assert response.status_code == 400
    assert client.get("/account").status_code == 302  # still logged out


def test_cookie_authenticated_json_api_post_needs_the_csrf_header(client, make_account, registry):
    researcher = make_account("j@example.org")
    token = log_in(client, researcher)
    body = {
        "full_name": "J",
        "affiliation": "Lab",
        "reference_name": "Ref",
        "reference_email": "ref@example.org",
        "research_summary": "Synthetic data.",
    }
    refused = client.post("/api/v1/credentials", json=body)
    assert refused.status_code == 400
    assert refused.headers["X-Error-Code"] == "BadRequest"
    accepted = client.post("/api/v1/credentials", json=body, headers={"X-CSRFToken": token})
    assert accepted.status_code == 201


def test_bearer_token_requests_need_no_csrf_token(app, make_account, registry):
    from registry.accounts import services, tokens

    make_account("t@example.org")
    with unit_of_work(registry.sessions) as db:
        user = services.find_user_by_email(db, "t@example.org")
        _row, secret = tokens.create_token(
            db, user, name="ci", scope="write", expires_in_days=1, default_days=30,
            max_days=365, now=registry.now(),
        )  # fmt: skip
    fresh = app.test_client()  # no cookie at all
    response = fresh.post(
        "/api/v1/credentials",
        json={
            "full_name": "T",
            "affiliation": "Lab",
            "reference_name": "Ref",
            "reference_email": "ref@example.org",
            "research_summary": "S.",
        },  # fmt: skip
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 201


def test_pages_carry_a_strict_content_security_policy(client, open_model):
    for path in ("/", "/models/demo/tiny", "/login", "/register", "/assets/css/app.css"):
        response = client.get(path)
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert client.get("/login").headers["Cache-Control"] == "no-store"


def test_session_cookie_is_httponly_samesite_and_rotated_at_login(client, make_account):
    account = make_account("c@example.org")
    client.get("/login")
    before = client.get_cookie("session")
    log_in(client, account)
    after = client.get_cookie("session")
    assert after is not None and after.http_only and after.same_site == "Lax"
    assert before is None or before.value != after.value


def test_session_cookie_is_secure_when_configured(settings):
    import dataclasses

    from registry.app import create_app

    app = create_app(settings=dataclasses.replace(settings, session_cookie_secure=True))
    assert app.config["SESSION_COOKIE_SECURE"] is True
    app.extensions["registry"].engine.dispose()


@pytest.mark.parametrize("template", sorted(TEMPLATES.rglob("*.html")), ids=lambda p: p.name)
def test_templates_have_no_inline_script_style_or_handlers(template):
    text = template.read_text(encoding="utf-8")
    assert not re.search(r"<script(?![^>]*\bsrc=)", text), "inline <script>"
    assert not re.search(r"\son[a-z]+\s*=", text), "event-handler attribute"
    assert not re.search(r"\sstyle\s*=", text), "inline style attribute"
    assert "<style" not in text
    assert "|safe" not in text.replace(" ", ""), "unescaped output"
