"""Every input the fuzzer found answering 5xx, now answered 4xx with a message that says
what to fix, on SQLite and PostgreSQL (issue 15)."""

from __future__ import annotations

import base64

import pytest

PATHS_4XX = [
    # NUL and control characters in path and query parameters name the parameter.
    ("/demo/tiny/resolve/v1%00/model_index.json", 400, "revision"),
    ("/api/models?search=%00", 400, "search"),
    ("/api/models?author=a%01b", 400, "author"),
    ("/api/models/demo/tiny%00", 400, "name"),
    ("/api/v1/models/demo/tiny/versions/v1%00", 400, "ref"),
    # Unicode digits and ids beyond the column range are not ids.
    ("/api/v1/models/demo/tiny/versions/%C2%B2", 404, None),
    ("/api/v1/models/demo/tiny/versions/99999999999999999999", 404, None),
    ("/api/v1/audit/events/99999999999999999999/proof", 404, None),
    ("/api/v1/access-requests/99999999999999999999", 404, None),
    ("/api/v1/audit/checkpoints/%C2%B2", 404, None),
    # A cursor that decodes to an offset beyond any table.
    (
        "/api/models?cursor=" + base64.urlsafe_b64encode(b"100000000000000000000").decode(),
        400,
        "cursor",
    ),
    # Trailing newlines never match a name, tag or commit.
    ("/api/models/demo/tiny%0A", 400, "name"),
    ("/api/models/demo/tiny/revision/v1%0A", 400, "revision"),
]


@pytest.mark.parametrize(("url", "status", "names"), PATHS_4XX)
def test_bad_path_and_query_parameters_answer_4xx(client, open_model, people, url, status, names):
    admin = people.user("bad-input-admin@example.org", admin=True)
    token = people.token(admin, "admin")
    response = client.get(url, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    message = response.headers.get("X-Error-Message", "")
    assert all(ord(c) >= 32 and ord(c) != 127 for c in message)
    if names:
        assert repr(names) in response.get_json()["error"] or names in message


@pytest.mark.parametrize("url", ["/%00", "/nothing%01here", "/api/v1/%00%0d%0a"])
def test_error_headers_never_carry_control_characters(client, url):
    response = client.get(url)
    assert response.status_code == 404
    for name, value in response.headers.items():
        assert all(32 <= ord(c) < 127 for c in value), (name, value)


def test_nul_in_a_json_body_names_the_field(api):
    response = api("POST", "/api/v1/login", json={"email": "a\x00@example.org", "password": "x"})
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.get_json()["problems"] == [
        {"field": "email", "problem": "contains a NUL character (U+0000); remove it"}
    ]


def test_nul_in_a_login_form_is_refused(client):
    response = client.post("/login", data={"email": "a\x00@example.org", "password": "x"})
    assert response.status_code < 500


def test_deeply_nested_json_is_refused(client, people):
    token = people.token(people.user("nested@example.org", admin=True), "admin")
    body = "[" * 1000 + "]" * 1000
    for url in ("/api/v1/login", "/api/v1/register", "/api/v1/uploads"):
        response = client.post(
            url,
            data=body,
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}"} if "uploads" in url else {},
        )
        assert response.status_code == 400, (url, response.get_data(as_text=True)[:300])


# A new model's request form and DUA are checked when it is created ------------------------

BAD_MODELS = [
    ({"access_fields": [{"name": "why", "type": "select", "options": 5}]}, "access_fields"),
    ({"access_fields": [{"name": "why", "required": "yes"}]}, "access_fields"),
    ({"access_fields": [{"name": "a"}, {"name": "a"}]}, "access_fields"),
    ({"access_fields": "name"}, "access_fields"),
    ({"dua": "physionet-credentialed-dua-typo"}, "dua"),
]


@pytest.fixture
def files(tiny_model_dir):
    from tests.registry.publishing_helpers import folder_files

    return folder_files(tiny_model_dir)


@pytest.mark.parametrize(("fields", "problem"), BAD_MODELS)
def test_a_new_models_access_fields_and_dua_are_validated(registry, client, files, fields, problem):
    from tests.registry.publishing_helpers import UploadApi, make_token, make_user

    user = make_user(registry, "pub@mgh.org", institution="mgh", role="publisher")
    uploads = UploadApi(make_token(registry, user, "write"), client=client)
    reply = uploads.open("mgh/new-model", files, tier="open", **fields)
    assert reply.status in (400, 422), reply.body
    assert problem in reply.body["error"]
    assert {p["field"] for p in reply.body.get("problems", [])} <= {problem}
    from registry.models import Model

    with registry.sessions() as db:
        assert db.query(Model).count() == 0


NEWLINE_UPLOADS = [
    ({"repo": "mgh/x\n"}, "repo id"),
    ({"tag": "v1\n"}, "tag"),
    ({"sha256": "0" * 64 + "\n"}, "sha256"),
]


@pytest.mark.parametrize(("change", "word"), NEWLINE_UPLOADS)
def test_a_trailing_newline_never_makes_a_name_tag_or_digest(registry, client, files, change, word):
    from tests.registry.publishing_helpers import UploadApi, declare, make_token, make_user

    user = make_user(registry, "pub@mgh.org", institution="mgh", role="publisher")
    uploads = UploadApi(make_token(registry, user, "write"), client=client)
    declared, change = declare(files), dict(change)
    if "sha256" in change:
        declared[0]["sha256"] = change.pop("sha256")
    body = {"repo": "mgh/x", "files": declared, "tier": "open", **change}
    reply = uploads.call("POST", "/api/v1/uploads", json=body)
    assert reply.status == 400, reply.body
    assert word in reply.body["error"]


TYPED_BODIES = [
    ("POST", "/api/v1/login", {"email": 5, "password": "x"}, "email", "must be a string"),
    ("POST", "/api/v1/login", {"email": "a@b.org", "password": ["x"]}, "password", "string"),
    ("POST", "/api/v1/tokens", {"name": "t", "scope": "root"}, "scope", "must be one of"),
    ("POST", "/api/v1/tokens", {"name": "t", "scope": "read", "expires_in_days": "5"},
     "expires_in_days", "integer"),
    ("PATCH", "/api/v1/users/1", {"is_active": "yes"}, "is_active", "true or false"),
    ("POST", "/api/v1/institutions", {"slug": 7, "name": "x"}, "slug", "must be a string"),
    ("PUT", "/api/v1/me/notifications", {"decisions": "no"}, "decisions", "true or false"),
    ("PUT", "/api/v1/me/notifications", {"reviews": "never"}, "reviews", "must be one of"),
    ("PUT", "/api/v1/me/notifications", {"nope": True}, "nope", "not a field"),
    ("POST", "/api/v1/webhooks", {"url": "https://example.org/h", "events": ["version.published"],
     "allow_private": "yes"}, "allow_private", "true or false"),
    ("POST", "/api/v1/webhooks", {"url": 5, "events": ["version.published"]}, "url", "string"),
    ("POST", "/api/v1/trainings", {"kind": 5, "completed_on": "2026-01-02"}, "kind", "string"),
    ("POST", "/api/v1/trainings", {"kind": "citi", "verification_url": ["x"]},
     "verification_url", "string"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "url", "body", "field", "words"), TYPED_BODIES)
def test_typed_bodies_name_the_field_in_one_problems_shape(
    client, people, method, url, body, field, words
):
    token = people.token(people.user("typed@example.org", admin=True), "admin")
    response = client.open(
        url, method=method, json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 422, response.get_data(as_text=True)
    problems = response.get_json()["problems"]
    assert [p["field"] for p in problems] == [field]
    assert words in problems[0]["problem"]


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/api/v1/register", {"email": ["a@b.org"], "password": "x" * 12}, "email"),
        ("/api/v1/register", {"email": "a@b.org", "accept_terms": "yes"}, "accept_terms"),
        ("/api/v1/password/forgot", {"email": {"a": 1}}, "email"),
        ("/api/v1/password/reset", {"token": 5, "new_password": "x"}, "token"),
        ("/api/v1/verify-email", {"token": None}, "token"),
    ],
)
def test_anonymous_typed_bodies_are_422_not_5xx(client, url, body, field):
    response = client.post(url, json=body)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert [p["field"] for p in response.get_json()["problems"]] == [field]


def test_a_web_token_lifetime_of_unicode_digits_is_a_form_error(client, people):
    from tests.fixtures.principals import PASSWORD
    from tests.web.test_security import csrf_token

    people.user("web-digits@example.org")
    login = {"csrf_token": csrf_token(client), "email": "web-digits@example.org"}
    assert client.post("/login", data={**login, "password": PASSWORD}).status_code == 302
    form = {"csrf_token": csrf_token(client, "/account/tokens"), "name": "t", "scope": "read"}
    response = client.post("/account/tokens", data={**form, "expires_in_days": "\u00b2"})
    assert response.status_code == 422, response.get_data(as_text=True)[:300]
