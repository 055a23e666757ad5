"""Admin and reviewer pages over HTTP: access requests, withdrawal with its downloaders,
the audit log with CSV export, users and institutions."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from registry.unit_of_work import unit_of_work
from tests.fixtures.repos import publish_folder
from tests.web.test_security import log_in

FIELDS = [
    {"name": "purpose", "label": "What will you use the model for?", "type": "textarea"},
    {"name": "irb", "label": "IRB approval number", "type": "text", "required": False},
    {"name": "no_reid", "label": "I will not try to re-identify anyone", "type": "checkbox"},
]


@pytest.fixture
def reviewed_model(registry, tiny_model_dir):  # type: ignore[no-untyped-def]
    from registry.models import Institution, Model

    published = publish_folder(
        registry, "mgh/cxr-review", tiny_model_dir, tier="contributor-review"
    )
    with registry.sessions() as db, db.begin():
        model = db.query(Model).filter_by(namespace="mgh", name="cxr-review").one()
        model.access_fields = FIELDS
        institution = db.get(Institution, model.institution_id)
        institution.name = "Mass General"
    return published


def _page(client, path: str) -> str:  # type: ignore[no-untyped-def]
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return response.get_data(as_text=True)


def test_access_request_with_fields_then_accept_until_a_date_and_revoke(
    app, client, make_account, reviewed_model
):
    requester = make_account("req@example.org", display_name="Quinn")
    reviewer = make_account("boss@mgh.example", institution="mgh", role="institution-admin")

    token = log_in(client, requester)
    page = _page(client, "/models/mgh/cxr-review")
    assert "/models/mgh/cxr-review/request-access" in page
    form = _page(client, "/models/mgh/cxr-review/request-access")
    assert 'for="fields.purpose">What will you use the model for?' in form

    response = client.post(
        "/models/mgh/cxr-review/request-access", data={"csrf_token": token, "fields.purpose": ""}
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="fields.purpose-error"' in page and 'id="fields.no_reid-error"' in page

    response = client.post(
        "/models/mgh/cxr-review/request-access",
        data={
            "csrf_token": token,
            "fields.purpose": "Augment a classifier",
            "fields.no_reid": "yes",
        },  # fmt: skip
    )
    assert response.status_code == 302
    assert "pending" in _page(client, "/account/access-requests")

    staff = app.test_client()
    staff_token = log_in(staff, reviewer)
    queue = _page(staff, "/admin/access-requests")
    assert "Augment a classifier" in queue and "Quinn" in queue
    request_id = re.search(r'data-request="(\d+)"', queue).group(1)
    until = (dt.date.today() + dt.timedelta(days=90)).isoformat()
    response = staff.post(
        f"/admin/access-requests/{request_id}/decision",
        data={"csrf_token": staff_token, "decision": "accept", "expires_at": until},
    )
    assert response.status_code == 302
    assert f"until {until}" in _page(staff, "/admin/access-requests?status=accepted")
    mine = _page(client, "/account/access-requests")
    assert "accepted" in mine and until in mine

    response = staff.post(
        f"/admin/access-requests/{request_id}/revoke",
        data={"csrf_token": staff_token, "reason": "Project ended"},
    )
    assert response.status_code == 302
    mine = _page(client, "/account/access-requests")
    assert "revoked" in mine and "Project ended" in mine
    box = _page(client, "/models/mgh/cxr-review")
    assert "was revoked" in box and "Project ended" in box


def test_reject_needs_a_reason_and_the_requester_sees_it(app, client, make_account, reviewed_model):
    requester = make_account("req2@example.org")
    token = log_in(client, requester)
    client.post(
        "/models/mgh/cxr-review/request-access",
        data={"csrf_token": token, "fields.purpose": "x", "fields.no_reid": "yes"},
    )
    admin = app.test_client()
    admin_token = log_in(admin, make_account("root@example.org", admin=True))
    request_id = re.search(r'data-request="(\d+)"', _page(admin, "/admin/access-requests")).group(1)
    url = f"/admin/access-requests/{request_id}/decision"
    admin.post(url, data={"csrf_token": admin_token, "decision": "reject", "reason": ""})
    assert "reason is required" in _page(admin, "/admin/access-requests")
    admin.post(url, data={"csrf_token": admin_token, "decision": "reject", "reason": "Too vague"})
    mine = _page(client, "/account/access-requests")
    assert "rejected" in mine and "Too vague" in mine


def test_other_institutions_admin_sees_no_request_and_cannot_decide(
    app, client, make_account, reviewed_model
):
    token = log_in(client, make_account("req3@example.org"))
    client.post(
        "/models/mgh/cxr-review/request-access",
        data={"csrf_token": token, "fields.purpose": "x", "fields.no_reid": "yes"},
    )
    outsider = app.test_client()
    outsider_token = log_in(
        outsider, make_account("boss@other.example", institution="other", role="institution-admin")
    )
    assert "data-request=" not in _page(outsider, "/admin/access-requests")
    response = outsider.post(
        "/admin/access-requests/1/decision",
        data={"csrf_token": outsider_token, "decision": "accept"},
    )
    assert response.status_code == 403


def test_withdrawal_page_lists_downloaders_and_stops_downloads(
    app, client, make_account, open_model
):
    downloader = make_account("dl@example.org", display_name="Dana Downloader")
    log_in(client, downloader)
    url = f"/demo/tiny/resolve/{open_model.commit}/model_index.json"
    assert client.get(url).status_code == 200

    staff = app.test_client()
    staff_token = log_in(staff, make_account("pub@demo.example", institution="demo"))
    model_page = _page(staff, "/models/demo/tiny")
    withdraw_url = re.search(r'href="(/versions/\d+/withdraw)"', model_page).group(1)
    page = _page(staff, withdraw_url)
    assert "Dana Downloader" in page and "dl@example.org" in page
    response = staff.post(withdraw_url, data={"csrf_token": staff_token, "reason": "Label leak"})
    assert response.status_code == 302
    assert "Label leak" in _page(staff, withdraw_url)

    assert client.get(url).status_code == 410
    box = _page(client, "/models/demo/tiny")
    assert 'data-access="withdrawn"' in box and "Label leak" in box
    assert client.get(withdraw_url).status_code == 403


def test_audit_log_filters_and_exports_csv(client, make_account, open_model):
    admin = make_account("auditor@example.org", admin=True)
    make_account("someone@example.org")
    log_in(client, admin)
    page = _page(client, "/admin/audit?action=account:")
    assert "account:register" in page and "someone@example.org" in page
    assert "version:publish" not in page
    page = _page(client, "/admin/audit?actor=someone@example.org")
    assert "someone@example.org" in page and "auditor@example.org" not in page
    assert "log intact" in _page(client, "/admin/audit?verify=1")

    response = client.get("/admin/audit.csv?action=account:register")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    text = response.get_data(as_text=True)
    assert "someone@example.org" in text and "version:publish" not in text


def test_admin_assigns_institution_roles_and_flags(app, client, make_account):
    admin = make_account("root@example.org", admin=True)
    make_account("newpub@example.org")
    token = log_in(client, admin)
    response = client.post(
        "/admin/institutions", data={"csrf_token": token, "slug": "stanford", "name": "Stanford"}
    )
    assert response.status_code == 302
    users = _page(client, "/admin/users?q=newpub")
    user_id = re.search(r"/admin/users/(\d+)/membership", users).group(1)
    client.post(
        f"/admin/users/{user_id}/membership",
        data={"csrf_token": token, "institution": "stanford", "role": "publisher"},
    )
    institutions = _page(client, "/admin/institutions")
    assert "newpub@example.org" in institutions and "publisher" in institutions

    publisher = app.test_client()
    log_in(publisher, make_account("x@example.org"))
    assert publisher.get("/admin/users").status_code == 403
    assert publisher.get("/admin").status_code == 403


def _submit_through_the_api(app, registry, email: str, folder, repo: str) -> int:  # type: ignore[no-untyped-def]
    """A publisher's upload with a Bearer token (as registry-client does); the version id."""
    import hashlib

    from registry.accounts import services, tokens

    with unit_of_work(registry.sessions) as db:
        user = services.find_user_by_email(db, email)
        _row, secret = tokens.create_token(
            db, user, name="cli", scope="write", expires_in_days=1, default_days=30,
            max_days=365, now=registry.now(),
        )  # fmt: skip
    api = app.test_client()
    auth = {"Authorization": f"Bearer {secret}"}
    files = {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "README.md"
    }
    body = {
        "repo": repo,
        "tier": "credentialed",
        "files": [
            {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for path, data in files.items()
        ],
        "card": (folder / "README.md").read_text(),
    }
    session = api.post("/api/v1/uploads", json=body, headers=auth)
    assert session.status_code == 201, session.get_json()
    for entry in session.get_json()["files"]:
        if not entry["complete"]:
            sent = api.put(entry["upload_url"], data=files[entry["path"]], headers=auth)
            assert sent.status_code == 200, sent.get_json()
    commit = api.post(f"/api/v1/uploads/{session.get_json()['id']}/commit", json={}, headers=auth)
    assert commit.get_json()["state"] == "in-review"
    return commit.get_json()["version"]["id"]


def test_admin_rejects_a_version_with_a_reason_the_publisher_sees(
    app, client, registry, make_account, tiny_model_dir
):
    publisher = make_account("pub@mgh.example", institution="mgh")
    version_id = _submit_through_the_api(app, registry, publisher.email, tiny_model_dir, "mgh/x")
    admin = app.test_client()
    token = log_in(admin, make_account("root@example.org", admin=True))
    queue = _page(admin, "/admin/reviews")
    assert f'data-version="{version_id}"' in queue
    review = _page(admin, f"/admin/reviews/{version_id}")
    # The path wraps after its "/" on narrow screens.
    assert "unet/<wbr>diffusion_pytorch_model.safetensors" in review and "passed" in review

    admin.post(f"/admin/reviews/{version_id}/reject", data={"csrf_token": token, "reason": " "})
    assert "Give a &#39;reason&#39;" in _page(admin, f"/admin/reviews/{version_id}")
    response = admin.post(
        f"/admin/reviews/{version_id}/reject",
        data={"csrf_token": token, "reason": "The card's evaluation section is empty."},
    )
    assert response.status_code == 302
    assert f'data-version="{version_id}"' not in _page(admin, "/admin/reviews")

    log_in(client, publisher)
    mine = _page(client, f"/publish/versions/{version_id}")
    assert "Rejected: The card&#39;s evaluation section is empty." in mine
    assert client.get("/models/mgh/x").status_code == 404  # never visible
