"""Access requests for contributor-review models: the form, reviewers' decisions and
listings, re-application, revocation; the stock huggingface_hub client; and a revocation
seen at once by a second server process sharing the PostgreSQL database."""

from __future__ import annotations

import datetime as dt

import pytest
import requests
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import GatedRepoError
from sqlalchemy import select

from registry.unit_of_work import unit_of_work
from tests.fixtures.repos import publish_folder

FIELDS = [
    {"name": "purpose", "label": "What will you use the model for?", "type": "textarea"},
    {"name": "no_reid", "label": "I will not try to re-identify patients", "type": "checkbox"},
    {"name": "role", "label": "Role", "type": "select", "options": ["student", "faculty"]},
    {"name": "website", "label": "Lab website", "type": "text", "required": False},
]
ANSWERS = {"purpose": "Augmenting pneumothorax cases.", "no_reid": True, "role": "faculty"}
FILE = "model_index.json"


@pytest.fixture
def cr_model(registry, tiny_model_dir):
    from registry.models import Model

    published = publish_folder(registry, "demo/cr", tiny_model_dir, tier="contributor-review")
    with unit_of_work(registry.sessions) as db:
        model = db.scalar(select(Model).where(Model.name == "cr"))
        model.access_fields = FIELDS
        db.commit()
    return published


@pytest.fixture
def cast(people):
    """Researcher, reviewers and bystanders around institution ``demo``."""
    ids = {
        "researcher": people.researcher("res@example.org"),
        "inst_admin": people.user("head@example.org", institution="demo", role="institution-admin"),
        "publisher": people.user("pub@example.org", institution="demo", role="publisher"),
        "other_admin": people.user("head@other.org", institution="other", role="institution-admin"),
        "registry_admin": people.user("root@example.org", admin=True),
    }
    return {name: people.token(uid, "admin") for name, uid in ids.items()}


def test_request_review_reapply_accept_until_and_revoke(api, cast, registry, cr_model, gated_model):
    res = cast["researcher"]
    url = "/api/v1/models/demo/cr/access-requests"
    form = api("GET", "/api/v1/models/demo/cr/access-form").json
    assert form["requires_request"] is True and form["fields"] == FIELDS

    bad = api("POST", url, token=res, json={"fields": {"purpose": "x", "extra": 1, "role": "boss"}})
    assert bad.status_code == 422
    assert {p["field"] for p in bad.json["problems"]} == {
        "fields.extra",
        "fields.no_reid",
        "fields.role",
    }
    not_cr = api(
        "POST", "/api/v1/models/demo/gated/access-requests", token=res, json={"fields": {}}
    )
    assert not_cr.status_code == 400
    made = api("POST", url, token=res, json={"fields": ANSWERS})
    assert made.status_code == 201
    assert made.json["status"] == "pending" and made.json["still_missing"] == []
    assert api("POST", url, token=res, json={"fields": ANSWERS}).status_code == 409
    decide = f"/api/v1/access-requests/{made.json['id']}/decision"

    # Who reviews: the owning institution's admins and registry admins, nobody else.
    assert [
        r["user"] for r in api("GET", "/api/v1/access-requests", token=cast["inst_admin"]).json
    ] == ["res@example.org"]
    assert api("GET", "/api/v1/access-requests", token=cast["other_admin"]).json == []
    assert api("GET", "/api/v1/access-requests", token=cast["publisher"]).status_code == 403
    assert api("GET", url, token=cast["other_admin"]).status_code == 403
    for outsider in ("publisher", "other_admin", "researcher"):
        refused = api("POST", decide, token=cast[outsider], json={"decision": "accept"})
        assert refused.status_code == 403, outsider
    assert api("GET", f"/api/v1/access-requests/{made.json['id']}", token=res).status_code == 200

    assert (
        api("POST", decide, token=cast["inst_admin"], json={"decision": "reject"}).status_code
        == 422
    )
    rejected = api(
        "POST",
        decide,
        token=cast["inst_admin"],
        json={"decision": "reject", "reason": "unclear purpose"},
    )
    assert rejected.json["status"] == "rejected"
    denied = api("GET", f"/demo/cr/resolve/main/{FILE}", token=res)
    assert "was rejected on" in denied.headers["X-Error-Message"]
    assert "unclear purpose" in denied.headers["X-Error-Message"]

    again = api("POST", url, token=res, json={"fields": ANSWERS})
    assert again.status_code == 201
    until = (registry.now() + dt.timedelta(days=30)).date().isoformat()
    accepted = api(
        "POST",
        f"/api/v1/access-requests/{again.json['id']}/decision",
        token=cast["registry_admin"],
        json={"decision": "accept", "expires_at": until},
    )
    assert accepted.status_code == 200
    assert accepted.json["expires_at"].startswith(until) and accepted.json["active"] is True
    assert api("GET", f"/demo/cr/resolve/main/{FILE}", token=res).status_code == 200
    assert api("POST", url, token=res, json={"fields": ANSWERS}).status_code == 409

    listing = api(
        "GET",
        "/api/v1/access-requests?status=accepted&model=demo/cr&user=res@example.org",
        token=cast["registry_admin"],
    ).json
    assert [r["id"] for r in listing] == [again.json["id"]]
    mine = api("GET", "/api/v1/me/access-requests", token=res).json
    assert [r["status"] for r in mine] == ["accepted", "rejected"]

    revoke = f"/api/v1/access-requests/{again.json['id']}/revoke"
    assert api("POST", revoke, token=cast["inst_admin"], json={}).status_code == 422
    revoked = api("POST", revoke, token=cast["inst_admin"], json={"reason": "DUA breach reported"})
    assert revoked.json["status"] == "revoked"
    denied = api("GET", f"/demo/cr/resolve/main/{FILE}", token=res)
    assert denied.status_code == 403
    assert "was revoked on" in denied.headers["X-Error-Message"]
    assert "DUA breach reported" in denied.headers["X-Error-Message"]

    from registry.models import AuditEvent

    with unit_of_work(registry.sessions) as db:
        tags = list(
            db.scalars(
                select(AuditEvent.tag)
                .where(AuditEvent.tag.startswith("access-request:"))
                .order_by(AuditEvent.id)
            )
        )
    assert tags == [
        "access-request:create",
        "access-request:reject",
        "access-request:create",
        "access-request:accept",
        "access-request:revoke",
    ]


def test_stock_huggingface_hub_gets_gated_error_then_the_file(
    api, cast, live_server, cr_model, tmp_path, tiny_model_dir
):
    res = cast["researcher"]
    who = HfApi(endpoint=live_server.url).whoami(token=res)
    assert who["name"] == "res" and who["auth"]["accessToken"]["role"] == "admin"
    kwargs = {"endpoint": live_server.url, "cache_dir": tmp_path / "hf", "token": res}
    with pytest.raises(GatedRepoError) as first:
        hf_hub_download(cr_model.repo_id, FILE, **kwargs)
    assert "No accepted access request for demo/cr" in str(first.value)
    assert "/models/demo/cr/request-access" in str(first.value)

    made = api(
        "POST", "/api/v1/models/demo/cr/access-requests", token=res, json={"fields": ANSWERS}
    )
    with pytest.raises(GatedRepoError) as pending:
        hf_hub_download(cr_model.repo_id, FILE, **kwargs)
    assert "is awaiting review by the publishing institution" in str(pending.value)

    api(
        "POST",
        f"/api/v1/access-requests/{made.json['id']}/decision",
        token=cast["inst_admin"],
        json={"decision": "accept"},
    )
    path = hf_hub_download(cr_model.repo_id, FILE, **kwargs)
    with open(path, "rb") as fh:
        assert fh.read() == (tiny_model_dir / FILE).read_bytes()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # two processes share it
def test_revocation_through_one_server_is_seen_by_another(
    request, settings, people, cast, cr_model, start_server
):
    res = cast["researcher"]
    from registry.models import User

    with unit_of_work(people.registry.sessions) as db:
        res_id = db.scalar(select(User.id).where(User.email == "res@example.org"))
    grant = people.grant(res_id, cr_model.repo_id)

    first, second = start_server(), start_server()
    auth = {"Authorization": f"Bearer {res}"}
    admin = {"Authorization": f"Bearer {cast['inst_admin']}"}
    url = f"/demo/cr/resolve/main/{FILE}"
    assert requests.get(first.url + url, headers=auth, timeout=30).status_code == 200
    assert requests.get(second.url + url, headers=auth, timeout=30).status_code == 200

    revoked = requests.post(
        f"{second.url}/api/v1/access-requests/{grant}/revoke",
        json={"reason": "revoked in a hurry"},
        headers=admin,
        timeout=30,
    )
    assert revoked.status_code == 200, revoked.text
    denied = requests.get(first.url + url, headers=auth, timeout=30)
    assert denied.status_code == 403
    assert denied.headers["X-Error-Code"] == "GatedRepo"
    assert "revoked in a hurry" in denied.headers["X-Error-Message"]
