"""The admin queues through the API, for scripts (issue 18): pages, order, search and
bulk decisions that go through all together or not at all."""

from __future__ import annotations

from tests.fixtures.queues import application_statuses, make_applications


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_queue_pages_sorts_and_searches(client, registry, people) -> None:
    make_applications(registry, 30)
    admin = _auth(people.token(people.user("root@example.org", admin=True)))
    page = client.get("/api/v1/queues/credentials?per_page=10&page=2", headers=admin).json
    assert (page["total"], page["pages"], page["page"], len(page["items"])) == (30, 3, 2, 10)
    assert page["items"][0]["full_name"] == "Applicant 10"  # oldest first
    newest = client.get("/api/v1/queues/credentials?sort=newest", headers=admin).json
    assert newest["items"][0]["full_name"] == "Applicant 29"
    north = client.get("/api/v1/queues/credentials?q=NORTH&per_page=100", headers=admin).json
    assert north["total"] == 10
    past = client.get("/api/v1/queues/credentials?page=99&per_page=10", headers=admin).json
    assert past["page"] == 3 and len(past["items"]) == 10
    bad = client.get("/api/v1/queues/credentials?sort=sideways", headers=admin)
    assert bad.status_code == 400 and "sort must be oldest or newest" in bad.json["error"]
    users = client.get("/api/v1/queues/users?per_page=5", headers=admin).json
    assert users["total"] == 31 and users["pages"] == 7
    someone = _auth(people.token(people.user("someone@example.org")))
    assert client.get("/api/v1/queues/credentials", headers=someone).status_code == 403


def test_bulk_decisions_go_through_together_or_not_at_all(client, registry, people) -> None:
    make_applications(registry, 12)
    admin = _auth(people.token(people.user("root@example.org", admin=True)))
    ids = [
        item["id"] for item in client.get("/api/v1/queues/credentials", headers=admin).json["items"]
    ]
    url = "/api/v1/queues/credentials/decisions"
    done = client.post(url, json={"ids": ids[:5], "decision": "accept"}, headers=admin)
    assert done.status_code == 200, done.json
    assert done.json["decided"] == 5
    assert {item["status"] for item in done.json["items"]} == {"accepted"}
    assert application_statuses(registry) == {"accepted": 5, "pending": 7}

    # One item that cannot take the decision (already accepted) stops the whole batch.
    mixed = client.post(
        url, json={"ids": [ids[6], ids[0]], "decision": "reject", "reason": "Dup"}, headers=admin
    )
    assert mixed.status_code == 409, mixed.json
    assert mixed.json["error"].startswith("Nothing was decided")
    assert application_statuses(registry) == {"accepted": 5, "pending": 7}

    no_reason = client.post(url, json={"ids": ids[6:], "decision": "reject"}, headers=admin)
    assert no_reason.status_code in (400, 422)
    assert application_statuses(registry) == {"accepted": 5, "pending": 7}
    for body, words in [
        ({"ids": [], "decision": "accept"}, "Select at least one"),
        ({"ids": ["x"], "decision": "accept"}, "whole numbers"),
        ({"ids": ids, "decision": "maybe"}, "accept or reject"),
        ({"ids": list(range(1, 300)), "decision": "accept"}, "at most 200"),
    ]:
        answer = client.post(url, json=body, headers=admin)
        assert answer.status_code == 400 and words in answer.json["error"], answer.json
    missing = client.post(url, json={"ids": [ids[6], 999_999], "decision": "accept"}, headers=admin)
    assert missing.status_code == 404
    assert application_statuses(registry) == {"accepted": 5, "pending": 7}


def test_versions_in_review_are_published_or_rejected_together(
    app, client, registry, people, tiny_model_dir
) -> None:
    from tests.web.test_admin import _submit_through_the_api

    people.institution("mgh")
    people.user("pub@mgh.example", institution="mgh", role="publisher")
    ids = [
        _submit_through_the_api(app, registry, "pub@mgh.example", tiny_model_dir, f"mgh/m{i}")
        for i in range(3)
    ]
    admin = _auth(people.token(people.user("root@example.org", admin=True)))
    queue = client.get("/api/v1/queues/reviews", headers=admin).json
    assert [item["id"] for item in queue["items"]] == ids  # oldest submission first
    url = "/api/v1/queues/reviews/decisions"
    no_reason = client.post(url, json={"ids": ids[:2], "decision": "reject"}, headers=admin)
    assert no_reason.status_code == 400 and "Nothing was decided" in no_reason.json["error"]
    rejected = client.post(
        url, json={"ids": ids[:2], "decision": "reject", "reason": "Card incomplete"}, headers=admin
    )
    assert rejected.status_code == 200, rejected.json
    assert [i["status"] for i in rejected.json["items"]] == ["rejected", "rejected"]
    published = client.post(url, json={"ids": [ids[2]], "decision": "accept"}, headers=admin)
    assert published.status_code == 200, published.json
    assert published.json["items"] == [{"id": ids[2], "status": "published"}]
    assert client.get("/api/v1/queues/reviews", headers=admin).json["total"] == 0
