"""Grants that stay right under races (real threads against a live server, SQLite and
PostgreSQL): one pending access request and one open credential application per user,
decisions as compare-and-set; tokens that die with the token that minted them; models
with nothing published look missing to outsiders."""

from __future__ import annotations

import requests

from tests.fixtures.repos import publish_folder
from tests.registry.test_access_credentials import APPLICATION
from tests.registry.test_publishing_trust import run_together

FILE = "model_index.json"


def _call(url: str, token: str, method: str, path: str, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return requests.request(method, f"{url}{path}", headers=headers, timeout=60, **kwargs)


def test_parallel_access_requests_leave_one_and_a_revoke_sticks(
    registry, live_server, people, tiny_model_dir
):
    publish_folder(registry, "demo/cr", tiny_model_dir, tier="contributor-review")
    user = people.token(people.researcher("res@example.org"), "write")
    admin = people.token(people.user("root@example.org", admin=True), "admin")
    url = live_server.url

    replies = run_together(16, lambda i: _call(url, user, "POST",
                                               "/api/v1/models/demo/cr/access-requests",
                                               json={"fields": {}}))  # fmt: skip
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [201] + [409] * 15, [r.text for r in replies]
    mine = _call(url, user, "GET", "/api/v1/me/access-requests").json()
    assert [r["status"] for r in mine] == ["pending"]

    request_id = mine[0]["id"]
    decision = f"/api/v1/access-requests/{request_id}/decision"
    decided = run_together(2, lambda i: _call(url, admin, "POST", decision,
                                              json={"decision": ("accept", "reject")[i],
                                                    "reason": "race"}))  # fmt: skip
    assert sorted(r.status_code for r in decided) == [200, 409], [r.text for r in decided]
    status = _call(url, user, "GET", f"/api/v1/access-requests/{request_id}").json()["status"]
    if status == "accepted":
        assert _call(url, user, "GET", f"/demo/cr/resolve/main/{FILE}").status_code == 200
        revoked = _call(url, admin, "POST", f"/api/v1/access-requests/{request_id}/revoke",
                        json={"reason": "ended"})  # fmt: skip
        assert revoked.status_code == 200, revoked.text
    assert _call(url, user, "GET", f"/demo/cr/resolve/main/{FILE}").status_code == 403


def test_parallel_credential_applications_leave_one_and_a_revoke_sticks(
    registry, live_server, people
):
    user_id = people.user("ada@example.org")
    user = people.token(user_id, "write")
    admin = people.token(people.user("root@example.org", admin=True), "admin")
    url = live_server.url

    replies = run_together(8, lambda i: _call(url, user, "POST", "/api/v1/credentials",
                                              json=APPLICATION))  # fmt: skip
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [201] + [409] * 7, [r.text for r in replies]
    first = next(r.json() for r in replies if r.status_code == 201)
    decision = f"/api/v1/credentials/{first['id']}/decision"
    assert _call(url, admin, "POST", decision, json={"decision": "accept"}).status_code == 200
    assert _call(url, user, "POST", "/api/v1/credentials", json=APPLICATION).status_code == 409
    revoked = _call(url, admin, "POST", decision, json={"decision": "revoke", "reason": "x"})
    assert revoked.status_code == 200, revoked.text
    from sqlalchemy import select

    from registry.models import CredentialApplication

    with registry.sessions() as db:
        statuses = db.scalars(
            select(CredentialApplication.status).where(CredentialApplication.user_id == user_id)
        ).all()
    assert statuses == ["revoked"]  # nothing else is left to keep the account credentialed


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_token_minted_by_a_token_dies_with_it(registry, client, people):
    parent = people.token(people.user("root@example.org", admin=True), "admin")

    def mint(by: str, name: str, scope: str) -> str:
        reply = client.post("/api/v1/tokens", json={"name": name, "scope": scope},
                            headers=_bearer(by))  # fmt: skip
        assert reply.status_code == 201, reply.get_json()
        return reply.get_json()["token"]

    child = mint(parent, "child", "admin")
    grandchild = mint(child, "grandchild", "read")
    for token in (child, grandchild):
        assert client.get("/api/v1/me", headers=_bearer(token)).status_code == 200
    listed = client.get("/api/v1/tokens", headers=_bearer(parent)).get_json()
    parent_id = next(t["id"] for t in listed if t["name"] == "test-admin")
    revoked = client.delete(f"/api/v1/tokens/{parent_id}", headers=_bearer(child))
    assert revoked.status_code == 200, revoked.get_json()
    for token in (child, grandchild):
        reply = client.get("/api/v1/me", headers=_bearer(token))
        assert reply.status_code == 401 and "was revoked" in reply.get_json()["error"]


def test_a_model_with_nothing_published_looks_missing_to_outsiders(
    registry, client, people, tiny_model_dir
):
    from registry.models import Version
    from registry.unit_of_work import unit_of_work

    publish_folder(registry, "demo/soon", tiny_model_dir, tier="open")
    with unit_of_work(registry.sessions) as db:
        for version in db.query(Version).all():
            version.state, version.commit, version.published_seq = "in-review", None, None
        db.commit()
    outsider = people.token(people.user("o@example.org"), "read")
    member = people.token(people.user("m@demo.org", institution="demo", role="member"), "read")
    staff = people.token(people.user("p@demo.org", institution="demo", role="publisher"), "read")
    for token, status in ((None, 404), (outsider, 404), (member, 404), (staff, 200)):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        for path in ("/api/v1/models/demo/soon/versions", "/api/v1/models/demo/soon/versions/1"):
            reply = client.get(path, headers=headers)
            assert reply.status_code == status, (path, token, reply.get_json())


def test_a_member_sees_the_institutions_published_versions_but_not_its_drafts(
    app, registry, people, tiny_model_dir
):
    from registry.models import Version
    from registry.unit_of_work import unit_of_work
    from tests.fixtures.principals import PASSWORD

    publish_folder(registry, "demo/cxr", tiny_model_dir, tier="open", tag="v1")
    with unit_of_work(registry.sessions) as db:
        draft = Version(model_id=1, state="rejected", reject_reason="labels leak")
        db.add(draft)
        db.commit()
    people.user("m@demo.org", institution="demo", role="member")
    people.user("p@demo.org", institution="demo", role="publisher")
    for email, sees_draft in (("m@demo.org", False), ("p@demo.org", True)):
        browser = app.test_client()
        login = browser.post("/api/v1/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.get_json()
        page = browser.get("/publish").get_data(as_text=True)
        assert "demo/cxr" in page
        assert ("labels leak" in page) is sees_draft, email
