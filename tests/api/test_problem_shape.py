"""Every ``problems`` list the registry answers is ``[{field, problem}]``: accounts, typed
bodies and publishing validation alike, stored reports from before included (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from client.errors import ValidationError, error_from_response
from registry.api.v1.serializers import problem_list
from registry.models import UploadSession, Version
from registry.unit_of_work import unit_of_work
from tests.registry.publishing_helpers import UploadApi, folder_files, make_token, make_user

WEIGHTS = "unet/diffusion_pytorch_model.safetensors"


@pytest.fixture
def files(tiny_model_dir: Path) -> dict[str, bytes]:
    return folder_files(tiny_model_dir)


@pytest.fixture
def api(registry, client) -> UploadApi:
    user = make_user(registry, "pub@mgh.org", institution="mgh", role="publisher")
    return UploadApi(make_token(registry, user), client=client)


def _one_shape(problems: list[Any]) -> list[dict[str, str]]:
    assert problems, "expected at least one problem"
    for problem in problems:
        assert set(problem) == {"field", "problem"}, problem
        assert isinstance(problem["field"], str) and problem["problem"]
    return problems


def test_publishing_problems_are_field_and_problem(api, files):
    refused = api.open("mgh/shape", {**files, "model.bin": b"\x80\x04pickle"}, tier="open")
    assert refused.status == 422, refused.body
    assert "model.bin" in {p["field"] for p in _one_shape(refused.body["problems"])}

    broken = {**files, WEIGHTS: b"this is not a safetensors file"}
    session = api.open("mgh/shape", broken, tier="open").body
    api.send_all(session, broken)
    committed = api.commit(session["id"])
    assert committed.status == 422, committed.body
    problems = _one_shape(committed.body["problems"])
    assert WEIGHTS in {p["field"] for p in problems}
    assert api.session(session["id"]).body["problems"] == problems


def test_a_report_stored_in_the_old_shape_is_answered_in_the_new_one(registry, api, files):
    session = api.open("mgh/legacy", files, tier="open").body
    with unit_of_work(registry.sessions) as db:
        upload = db.scalars(select(UploadSession).where(UploadSession.id == session["id"])).one()
        version = db.get(Version, upload.version_id)
        version.validation_report = [
            {"path": WEIGHTS, "reason": "is broken"},
            {"path": "", "reason": "x"},
        ]
    assert api.session(session["id"]).body["problems"] == [
        {"field": WEIGHTS, "problem": "is broken"},
        {"field": "", "problem": "x"},
    ]
    assert problem_list(None) == [] and problem_list(["junk", {"field": "a", "problem": "b"}]) == [
        {"field": "a", "problem": "b"}
    ]


def test_the_web_card_fields_answer_lists_problems_in_the_one_shape(client, people):
    from tests.fixtures.principals import PASSWORD
    from tests.web.test_security import csrf_token

    people.user("web-card@mgh.org", institution="mgh", role="publisher")
    login = {"csrf_token": csrf_token(client), "email": "web-card@mgh.org"}
    assert client.post("/login", data={**login, "password": PASSWORD}).status_code == 302
    reply = client.post(
        "/publish/card-fields",
        json={"text": "---\nlicense: mit\n---\nbody\n"},
        headers={"X-CSRFToken": csrf_token(client, "/account/tokens")},
    )
    assert reply.status_code == 200, reply.get_data(as_text=True)[:300]
    problems = _one_shape(reply.get_json()["problems"])
    assert {p["field"] for p in problems} == {"README.md"}
    not_text = client.post(
        "/publish/card-fields",
        json={"text": 5},
        headers={"X-CSRFToken": csrf_token(client, "/account/tokens")},
    )
    assert not_text.status_code == 422, not_text.get_data(as_text=True)[:300]


def test_the_client_prints_each_problem_with_its_file():
    payload = {
        "code": "ValidationFailed",
        "error": "The version was refused",
        "problems": [{"field": WEIGHTS, "problem": "is truncated"}, {"field": "", "problem": "no"}],
    }
    error = error_from_response(422, {}, json.dumps(payload).encode(), url="/api/v1/uploads")
    assert isinstance(error, ValidationError)
    assert error.problems == ((WEIGHTS, "is truncated"), ("", "no"))
    assert error.lines()[1:] == [f"  - {WEIGHTS}: is truncated", "  - (version): no"]


def test_the_publishing_routes_read_typed_bodies(registry, client, api, files):
    """Withdraw, commit, institution keys and access requests: a wrong type is a 422 that
    names the field (these read raw JSON before and answered 400 or reached the service)."""
    admin = make_user(registry, "keys@mgh.org", institution="mgh", role="institution-admin")
    keys = UploadApi(make_token(registry, admin, "admin"), client=client)
    wrong_key = keys.call("POST", "/api/v1/institutions/mgh/keys", json={"public_key": 5})
    assert wrong_key.status == 422, wrong_key.body
    assert wrong_key.body["problems"] == [{"field": "public_key", "problem": "must be a string"}]

    session = api.open("mgh/typed", files, tier="open").body
    api.send_all(session, files)
    unsigned = api.commit(session["id"], publisher_signature=5)
    assert unsigned.status == 422, unsigned.body
    assert [p["field"] for p in unsigned.body["problems"]] == ["publisher_signature"]
    committed = api.commit(session["id"])
    assert committed.status == 200, committed.body

    commit = committed.body["version"]["commit"]
    path = f"/api/v1/models/mgh/typed/versions/{commit}/withdraw"
    withdrawn = api.call("POST", path, json={"reason": ["no"]})
    assert withdrawn.status == 422, withdrawn.body
    assert withdrawn.body["problems"] == [{"field": "reason", "problem": "must be a string"}]

    asked = api.call("POST", "/api/v1/models/mgh/typed/access-requests", json={"fields": 5})
    assert asked.status == 422, asked.body
    assert [p["field"] for p in asked.body["problems"]] == ["fields"]
