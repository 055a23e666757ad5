"""Nothing gated leaks through publishing or review: tier floors from data sets, lineage and
shared bytes; dedup that checks what it trusts; reviews, tags and commits that stay right
under races (real threads against a live server, on SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.registry.publishing_helpers import (
    UploadApi,
    declare,
    folder_files,
    make_token,
    make_user,
)

WEIGHTS = "unet/diffusion_pytorch_model.safetensors"


@pytest.fixture
def files(tiny_model_dir: Path) -> dict[str, bytes]:
    return folder_files(tiny_model_dir)


@pytest.fixture
def publisher(registry, client) -> UploadApi:
    return UploadApi(make_token(registry, make_user(registry, "pub@mgh.org", institution="mgh")),
                     client=client)  # fmt: skip


@pytest.fixture
def admin(registry, client) -> UploadApi:
    user = make_user(registry, "admin@registry.org", admin=True)
    return UploadApi(make_token(registry, user, scope="admin"), client=client)


def card(files: dict[str, bytes], tier: str, datasets: str = "[synthetic-phantoms]",
         **extra: str) -> dict[str, bytes]:  # fmt: skip
    text = files["README.md"].decode()
    text = text.replace("access_tier: open", f"access_tier: {tier}")
    text = text.replace("datasets: [synthetic-phantoms]", f"datasets: {datasets}")
    for key, value in extra.items():
        text = text.replace("---\n", f"---\n{key}: {value}\n", 1)
    return {**files, "README.md": text.encode()}


def published(publisher: UploadApi, admin: UploadApi, repo: str, files: dict[str, bytes],
              **fields: Any) -> dict[str, Any]:  # fmt: skip
    """Push ``files`` and, if they wait for review, have the admin publish them."""
    reply = publisher.publish(repo, files, **fields)
    assert reply.status == 200, reply.body
    version = reply.body["version"]
    if reply.body["state"] == "in-review":
        path = f"/api/v1/models/{repo}/versions/{version['id']}/publish"
        done = admin.call("POST", path)
        assert done.status == 200, done.body
        return done.body
    return version


def run_together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """``work(i)`` in ``count`` real threads released at once; their results in order."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait(timeout=30)
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(not t.is_alive() for t in threads)
    return results


# Tier floors -----------------------------------------------------------------------------


def test_open_copy_of_a_credentialed_models_files_is_refused_naming_that_model(
    publisher, admin, client, files
):
    gated = card(files, "credentialed")
    published(publisher, admin, "mgh/cxr-gated", gated, tier="credentialed", tag="v1")
    tree = client.get("/api/models/mgh/cxr-gated/tree/v1?recursive=true")
    assert tree.status_code == 200  # paths, sizes and sha256s are public
    assert WEIGHTS in {entry["path"] for entry in tree.get_json()}

    leak = card(files, "open")
    opened = publisher.open("mgh/leak", leak, tier="open")
    assert opened.status == 201, opened.body
    assert next(f for f in opened.body["files"] if f["path"] == WEIGHTS)["complete"] is True
    publisher.send_all(opened.body, leak)  # only the new card: every weight is "held"
    refused = publisher.commit(opened.body["id"])
    assert refused.status == 422, refused.body
    assert "mgh/cxr-gated" in refused.body["error"] and "credentialed" in refused.body["error"]
    assert WEIGHTS in {p["field"] for p in refused.body["problems"]}
    assert client.get(f"/mgh/leak/resolve/main/{WEIGHTS}").status_code == 404


def test_bytes_an_open_model_already_serves_stay_publishable_openly(publisher, admin, files):
    published(publisher, admin, "mgh/base", files, tier="open")
    gated = card(files, "credentialed")
    published(publisher, admin, "mgh/fine-tune", gated, tier="credentialed")
    again = publisher.publish("mgh/base-copy", card(files, "open", license_note="copy"),
                              tier="open")  # fmt: skip
    assert again.status == 200 and again.body["state"] == "published", again.body


def test_card_datasets_set_the_floor_and_unknown_ones_go_to_review(publisher, files):
    mimic = card(files, "open", "[mimic-cxr]")
    refused = publisher.publish("mgh/mimic-open", mimic, tier="open")
    assert refused.status == 422
    assert "data set 'mimic-cxr'" in refused.body["error"]
    assert "credentialed" in refused.body["error"]

    wrong = card(files, "credentialed", "[mimic-cxr]")
    opened = publisher.open("mgh/mimic-dua", wrong, tier="credentialed", dua="none-such")
    if opened.status == 201:  # this registry checks DUAs only against the floor
        publisher.send_all(opened.body, wrong)
        refused = publisher.commit(opened.body["id"])
        assert refused.status == 422 and "physionet-credentialed-1.5.0" in refused.body["error"]
    else:
        assert opened.status in (400, 422), opened.body

    unknown = publisher.publish("mgh/odd", card(files, "open", "[chexpert-plus]"), tier="open")
    assert unknown.status == 200 and unknown.body["state"] == "in-review", unknown.body

    right = publisher.publish("mgh/mimic", card(files, "credentialed", "[mimic-cxr]"),
                              tier="credentialed")  # fmt: skip
    if right.status == 200:
        assert right.body["state"] == "in-review", right.body
    else:  # refused for something else (an evaluation policy), never for its floor
        assert "requires at least" not in right.body["error"], right.body


def test_a_base_models_tier_is_the_floor_of_its_fine_tunes(publisher, admin, files):
    gated = card(files, "credentialed")
    published(publisher, admin, "mgh/gated-base", gated, tier="credentialed", tag="v1")
    child = card(files, "open", license_note="child")
    child["extra.txt"] = b"a fine-tune's own notes"
    refused = publisher.publish("mgh/child", child, tier="open", base="mgh/gated-base@v1")
    assert refused.status == 422
    assert "base model mgh/gated-base" in refused.body["error"]


# Dedup -----------------------------------------------------------------------------------


def test_dedup_checks_the_stored_size_before_trusting_a_declared_one(publisher, files):
    notes = b"sixteen bytes!!\n"
    assert publisher.publish("mgh/one", {**files, "notes.txt": notes}, tier="open").status == 200
    declared = declare({**files, "notes.txt": notes})
    for entry in declared:
        if entry["path"] == "notes.txt":
            entry["size"] = 1_000_000_000
    body = {"repo": "mgh/two", "tier": "open", "files": declared}
    opened = publisher.call("POST", "/api/v1/uploads", json=body)
    assert opened.status == 201, opened.body
    entry = next(f for f in opened.body["files"] if f["path"] == "notes.txt")
    assert entry["complete"] is False  # a normal upload: the bytes must come
    refused = publisher.commit(opened.body["id"])
    assert refused.status == 409 and refused.body["code"] == "UploadIncomplete"


# Review ----------------------------------------------------------------------------------


def test_nobody_reviews_their_own_upload(registry, client, files):
    both = make_user(registry, "head@mgh.org", institution="mgh", admin=True)
    api = UploadApi(make_token(registry, both, scope="admin"), client=client)
    version = api.publish("mgh/self", card(files, "credentialed"), tier="credentialed")
    assert version.body["state"] == "in-review"
    path = f"/api/v1/models/mgh/self/versions/{version.body['version']['id']}"
    own = api.call("POST", f"{path}/publish")
    assert own.status == 409 and "another registry admin" in own.body["error"]
    assert api.call("POST", f"{path}/reject", json={"reason": "mine"}).status == 409


def test_publish_and_reject_at_once_have_one_winner(registry, live_server, files):
    pub = UploadApi(make_token(registry, make_user(registry, "p@mgh.org", institution="mgh")),
                    url=live_server.url)  # fmt: skip
    reply = pub.publish("mgh/contest", card(files, "credentialed"), tier="credentialed", tag="v1")
    path = f"/api/v1/models/mgh/contest/versions/{reply.body['version']['id']}"
    admins = [make_token(registry, make_user(registry, f"a{i}@reg.org", admin=True), "admin")
              for i in range(2)]  # fmt: skip

    def decide(i: int) -> Any:
        api = UploadApi(admins[i], url=live_server.url)
        if i == 0:
            return api.call("POST", f"{path}/publish")
        return api.call("POST", f"{path}/reject", json={"reason": "not yet"})

    replies = run_together(2, decide)
    assert sorted(r.status for r in replies) == [200, 409], [r.body for r in replies]
    state = pub.call("GET", path).body
    tagged = pub.call("GET", "/api/models/mgh/contest/revision/v1")
    if replies[0].status == 200:
        assert state["state"] == "published" and tagged.status in (200, 401, 403)
    else:
        assert state["state"] == "rejected" and tagged.status == 404


def test_concurrent_pushes_of_one_tag_to_review_leave_one_in_review(registry, live_server, files):
    token = make_token(registry, make_user(registry, "p@mgh.org", institution="mgh"))
    api = UploadApi(token, url=live_server.url)
    gated = card(files, "credentialed")
    first = api.publish("mgh/tagged", gated, tier="credentialed", tag="v0")
    assert first.body["state"] == "in-review"
    sessions = []
    for i in range(8):
        variant = {**gated, "notes.txt": f"variant {i}".encode()}
        opened = api.open("mgh/tagged", variant, tag="v1").body
        api.send_all(opened, variant)
        sessions.append(opened["id"])

    replies = run_together(8, lambda i: UploadApi(token, url=live_server.url).commit(sessions[i]))
    statuses = sorted(r.status for r in replies)
    assert statuses == [200] + [409] * 7, [r.body for r in replies]
    assert all("v1" in r.body["error"] for r in replies if r.status == 409)


# Idempotent commits ------------------------------------------------------------------------


def test_a_push_run_again_after_a_lost_answer_returns_the_same_version(publisher, files):
    first = publisher.publish("mgh/again", files, tier="open", tag="v1")
    assert first.status == 200, first.body
    again = publisher.publish("mgh/again", files, tag="v1")
    assert again.status == 200, again.body
    assert again.body["version"]["id"] == first.body["version"]["id"]
    untagged = publisher.publish("mgh/again", {**files, "n.txt": b"x"})
    repeat = publisher.publish("mgh/again", {**files, "n.txt": b"x"})
    assert repeat.body["version"]["id"] == untagged.body["version"]["id"]
    versions = publisher.call("GET", "/api/v1/models/mgh/again/versions").body
    assert len(versions) == 2, versions


def test_a_tag_waiting_for_review_is_reserved_even_against_unreviewed_versions(publisher, files):
    odd = card(files, "open", "[chexpert-plus]")  # an unknown data set: reviewed
    waiting = publisher.publish("mgh/mixed", odd, tier="open", tag="v1")
    assert waiting.body["state"] == "in-review", waiting.body
    plain = {**files, "notes.txt": b"a plain open version"}
    taken = publisher.publish("mgh/mixed", plain, tag="v1")
    assert taken.status == 409 and "waits for review" in taken.body["error"], taken.body
