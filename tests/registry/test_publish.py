"""Commit, review and publish: in-review versions stay invisible, reviewers decide, one
atomic publish, lineage, and exactly one winner for a contested tag."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.registry.publishing_helpers import UploadApi, folder_files, make_token, make_user

WEIGHTS = "unet/diffusion_pytorch_model.safetensors"


@pytest.fixture
def files(tiny_model_dir: Path) -> dict[str, bytes]:
    return folder_files(tiny_model_dir)


@pytest.fixture
def publisher(registry, client) -> UploadApi:
    user = make_user(registry, "pub@mgh.org", institution="mgh")
    return UploadApi(make_token(registry, user), client=client)


@pytest.fixture
def admin(registry, client) -> UploadApi:
    user = make_user(registry, "admin@registry.org", admin=True)
    return UploadApi(make_token(registry, user, scope="admin"), client=client)


def _card(files: dict[str, bytes], tier: str) -> dict[str, bytes]:
    card = files["README.md"].decode().replace("access_tier: open", f"access_tier: {tier}")
    return {**files, "README.md": card.encode()}


def test_reviewed_version_is_invisible_until_an_admin_publishes_it(
    publisher, admin, client, registry, files
):
    files = _card(files, "credentialed")
    reply = publisher.publish("mgh/cxr-gated", files, tier="credentialed", tag="v1")
    assert reply.status == 200, reply.body
    assert reply.body["state"] == "in-review"
    version = reply.body["version"]
    assert version["commit"] is None and version["manifest_url"] is None
    assert client.get("/api/models/mgh/cxr-gated").status_code == 404
    assert client.get("/api/models").get_json() == []
    assert client.get("/api/v1/models/mgh/cxr-gated/versions/v1/manifest").status_code == 404

    detail = publisher.call("GET", f"/api/v1/models/mgh/cxr-gated/versions/{version['id']}")
    assert detail.status == 200 and detail.body["state"] == "in-review"
    assert detail.body["card_text"].startswith("---")
    outsider = UploadApi(make_token(registry, make_user(registry, "o@bwh.org", institution="bwh")),
                         client=client)  # fmt: skip
    path = f"/api/v1/models/mgh/cxr-gated/versions/{version['id']}"
    # A model with nothing published is missing to those who may not read its drafts.
    assert outsider.call("GET", path).status == 404
    assert client.get(path).status_code == 404
    assert outsider.call("GET", "/api/v1/reviews").status == 403
    assert publisher.call("POST", f"{path}/publish").status == 403

    reviews = admin.call("GET", "/api/v1/reviews").body["reviews"]
    assert [r["id"] for r in reviews] == [version["id"]]
    assert reviews[0]["card_data"]["access_tier"] == "credentialed"
    assert {f["path"] for f in reviews[0]["files"]} == set(files)
    assert reviews[0]["validation_report"] == []

    published = admin.call("POST", f"{path}/publish")
    assert published.status == 200, published.body
    assert published.body["state"] == "published" and len(published.body["commit"]) == 40
    info = client.get("/api/models/mgh/cxr-gated").get_json()
    assert info["sha"] == published.body["commit"] and info["gated"] == "manual"
    assert admin.call("GET", "/api/v1/reviews").body["reviews"] == []
    assert admin.call("POST", f"{path}/publish").status == 409


def test_rejection_needs_a_reason_and_is_shown_to_the_publisher(publisher, admin, client, files):
    files = _card(files, "credentialed")
    version = publisher.publish("mgh/cxr-gated", files, tier="credentialed").body["version"]
    path = f"/api/v1/models/mgh/cxr-gated/versions/{version['id']}"
    assert admin.call("POST", f"{path}/reject", json={"reason": " "}).status == 400
    rejected = admin.call("POST", f"{path}/reject", json={"reason": "Card lacks evaluation"})
    assert rejected.status == 200 and rejected.body["state"] == "rejected"
    seen = publisher.call("GET", path).body
    assert seen["reject_reason"] == "Card lacks evaluation"
    assert admin.call("POST", f"{path}/publish").status == 409
    assert client.get("/api/models/mgh/cxr-gated").status_code == 404


def test_base_model_lineage_is_recorded_and_signed(publisher, client, files):
    base = publisher.publish("mgh/base", files, tier="open", tag="v1").body["version"]
    child = publisher.publish("mgh/child", files, tier="open", base="mgh/base@v1")
    assert child.status == 200, child.body
    assert child.body["version"]["base_model"] == f"mgh/base@{base['commit']}"
    manifest = client.get("/api/v1/models/mgh/child/versions/main/manifest").get_json()
    assert f'"base_model":"mgh/base@{base["commit"]}"' in manifest["manifest"]
    missing = publisher.open("mgh/child2", files, tier="open", base="mgh/nothing@v1")
    assert missing.status == 404


def test_two_concurrent_commits_of_one_tag_have_exactly_one_winner(registry, live_server, files):
    token = make_token(registry, make_user(registry, "pub@mgh.org", institution="mgh"))
    api = UploadApi(token, url=live_server.url)
    assert api.publish("mgh/cxr", files, tier="open", tag="v0").status == 200
    first = api.open("mgh/cxr", {**files, "a.txt": b"first"}, tag="v1").body
    second = api.open("mgh/cxr", {**files, "b.txt": b"second"}, tag="v1").body
    api.send_all(first, {**files, "a.txt": b"first"})
    api.send_all(second, {**files, "b.txt": b"second"})

    barrier = threading.Barrier(2)
    replies: dict[str, object] = {}

    def commit(session: dict) -> None:
        mine = UploadApi(token, url=live_server.url)
        barrier.wait(timeout=30)
        replies[session["id"]] = mine.commit(session["id"])

    threads = [threading.Thread(target=commit, args=(s,)) for s in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    statuses = sorted(r.status for r in replies.values())  # type: ignore[attr-defined]
    assert statuses == [200, 409], [r.body for r in replies.values()]  # type: ignore[attr-defined]
    loser = next(r for r in replies.values() if r.status == 409)  # type: ignore[attr-defined]
    assert "v1" in loser.body["error"]
    tree = api.call("GET", "/api/models/mgh/cxr/revision/v1").body
    names = {s["rfilename"] for s in tree["siblings"]}
    assert len(names & {"a.txt", "b.txt"}) == 1


def test_commit_before_every_byte_arrived_is_refused(publisher, files):
    session = publisher.open("mgh/cxr", files, tier="open").body
    publisher.put(session, WEIGHTS, files[WEIGHTS][:10], 0, len(files[WEIGHTS]))
    refused = publisher.commit(session["id"])
    assert refused.status == 409 and refused.body["code"] == "UploadIncomplete"
    incomplete = {f["path"]: f for f in refused.body["incomplete"]}
    assert incomplete[WEIGHTS]["received"] == 10
    publisher.send_all(publisher.session(session["id"]).body, files)
    first = publisher.commit(session["id"])
    assert first.status == 200
    again = publisher.commit(session["id"])  # the first answer was lost: the same version
    assert again.status == 200 and again.body["version"] == first.body["version"]
