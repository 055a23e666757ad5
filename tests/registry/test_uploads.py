"""Upload sessions through the HTTP API: chunks, resume, dedup, limits, abort, expiry."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import socket
from pathlib import Path

import pytest

from registry.unit_of_work import unit_of_work
from tests.registry.publishing_helpers import (
    UploadApi,
    folder_files,
    make_token,
    make_user,
    sha256,
)

WEIGHTS = "unet/diffusion_pytorch_model.safetensors"


@pytest.fixture
def files(tiny_model_dir: Path) -> dict[str, bytes]:
    return folder_files(tiny_model_dir)


@pytest.fixture
def api(registry, client) -> UploadApi:
    user = make_user(registry, "pub@mgh.org", institution="mgh", role="publisher")
    return UploadApi(make_token(registry, user), client=client)


def test_chunked_upload_publishes_an_open_model(api, client, files):
    opened = api.open("mgh/cxr-tiny", files, tier="open", tag="v1")
    assert opened.status == 201, opened.body
    session = opened.body
    assert session["state"] == "open" and session["review_required"] is False
    assert {f["path"] for f in session["files"]} == set(files)
    assert not any(f["complete"] or f["received"] for f in session["files"])
    api.send_all(session, files, chunk=64 * 1024)
    committed = api.commit(session["id"])
    assert committed.status == 200, committed.body
    version = committed.body["version"]
    assert committed.body["state"] == "published"
    assert len(version["commit"]) == 40 and version["tags"] == ["v1"]
    assert {f["path"]: f["sha256"] for f in version["files"]} == {
        p: hashlib.sha256(b).hexdigest() for p, b in files.items()
    }
    assert client.get("/api/models/mgh/cxr-tiny").get_json()["sha"] == version["commit"]
    got = client.get(f"/mgh/cxr-tiny/resolve/v1/{WEIGHTS}")
    assert got.status_code == 200 and got.data == files[WEIGHTS]
    assert api.session(session["id"]).body["state"] == "committed"


def test_head_tells_the_offset_and_a_wrong_offset_is_refused(api, files):
    session = api.open("mgh/cxr-tiny", files, tier="open").body
    data = files[WEIGHTS]
    url = next(f["upload_url"] for f in session["files"] if f["path"] == WEIGHTS)
    assert api.put(session, WEIGHTS, data[:100_000], 0, len(data)).status == 200
    head = api.call("HEAD", url)
    assert head.status == 200
    assert head.headers["Upload-Offset"] == "100000"
    assert head.headers["Upload-Length"] == str(len(data))
    assert head.headers["Range"] == "bytes=0-99999"
    assert head.headers["Upload-Complete"] == "false"

    skipped = api.put(session, WEIGHTS, data[200_000:300_000], 200_000, len(data))
    assert skipped.status == 409 and skipped.body["code"] == "OffsetMismatch"
    assert skipped.headers["Upload-Offset"] == "100000"
    assert WEIGHTS in skipped.body["error"]

    done = api.put(session, WEIGHTS, data[100_000:], 100_000, len(data))
    assert done.status == 200 and done.body == {
        "path": WEIGHTS, "size": len(data), "received": len(data), "complete": True
    }  # fmt: skip
    again = api.put(session, WEIGHTS, data[:10], 0, len(data))
    assert again.status == 409
    status = {f["path"]: f for f in api.session(session["id"]).body["files"]}
    assert status[WEIGHTS]["complete"] and status[WEIGHTS]["received"] == len(data)


def _cut_short(port: int, url: str, token: str, data: bytes, start: int, sent: int) -> None:
    """Send a PUT of ``data[start:]`` but only ``sent`` bytes of it, then hang up."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = (
            f"PUT {url} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Range: bytes {start}-{len(data) - 1}/{len(data)}\r\n"
            f"Content-Length: {len(data) - start}\r\n\r\n"
        )
        sock.sendall(head.encode() + data[start : start + sent])


def test_a_dropped_connection_keeps_nothing_of_its_chunk(registry, live_server, files):
    user = make_user(registry, "pub@mgh.org", institution="mgh")
    api = UploadApi(make_token(registry, user), url=live_server.url)
    session = api.open("mgh/cxr-tiny", files, tier="open").body
    data = files[WEIGHTS]
    url = next(f["upload_url"] for f in session["files"] if f["path"] == WEIGHTS)
    # A whole-file PUT (hashed as it is written, nothing staged) cut short keeps nothing.
    _cut_short(live_server.port, url, api.token, data, 0, 100_000)
    assert api.call("HEAD", url).headers["Upload-Offset"] == "0"
    assert sha256(data) not in {sha for sha, _, _ in registry.blobs.iter_blobs()}
    # A chunk cut short keeps the chunks before it.
    assert api.put(session, WEIGHTS, data[:50_000], 0, len(data)).status == 200
    _cut_short(live_server.port, url, api.token, data, 50_000, 100_000)
    offset = api.call("HEAD", url).headers["Upload-Offset"]
    assert offset == "50000"
    api.send_all(api.session(session["id"]).body, files)
    assert api.commit(session["id"]).status == 200


def test_identical_content_is_complete_at_once(api, registry, files):
    assert api.publish("mgh/cxr-tiny", files, tier="open", tag="v1").status == 200
    stored = sorted(registry.blobs.iter_blobs())
    second = api.open("mgh/cxr-tiny", files, tag="v2")
    assert second.status == 201
    assert all(f["complete"] and f["received"] == f["size"] for f in second.body["files"])
    committed = api.commit(second.body["id"])
    assert committed.status == 200, committed.body
    assert sorted(registry.blobs.iter_blobs()) == stored


def test_dedup_never_hands_out_another_institutions_bytes(api, registry, client, files):
    assert api.publish("mgh/cxr-tiny", files, tier="open").status == 200
    other = UploadApi(make_token(registry, make_user(registry, "x@bwh.org", institution="bwh")),
                      client=client)  # fmt: skip
    claim = {**files}
    opened = other.open("bwh/copy", claim, tier="open")
    assert opened.status == 201
    assert not any(f["complete"] for f in opened.body["files"])
    forged = other.put(opened.body, WEIGHTS, b"\0" * len(files[WEIGHTS]))
    assert forged.status == 422 and "sha256 mismatch" in forged.body["error"]
    assert WEIGHTS in forged.body["error"]
    other.send_all(other.session(opened.body["id"]).body, files)
    assert other.commit(opened.body["id"]).status == 200


def test_card_field_becomes_readme(api, client, files):
    card = files.pop("README.md").decode()
    reply = api.publish("mgh/cxr-tiny", files, tier="open", card=card)
    assert reply.status == 200, reply.body
    assert client.get("/mgh/cxr-tiny/resolve/main/README.md").data == card.encode()
    assert reply.body["version"]["card_data"]["access_tier"] == "open"
    both = api.open("mgh/cxr-tiny", {**files, "README.md": card.encode()}, card=card)
    assert both.status == 422 and both.body["problems"][0]["field"] == "README.md"


def test_institution_quota_counts_distinct_bytes(api, registry, files):
    registry.settings = dataclasses.replace(registry.settings, institution_quota=6_000_000)
    assert api.publish("mgh/cxr-tiny", files, tier="open", tag="v1").status == 200
    # The same bytes again cost nothing; new ones must fit the quota.
    assert api.open("mgh/cxr-tiny", files, tag="v2").status == 201
    big = {**files, "extra.txt": b"z" * 3_000_000}
    refused = api.open("mgh/cxr-tiny", big, tag="v3")
    assert refused.status == 413 and "quota" in refused.body["error"]


def test_new_models_need_a_tier_and_terms_stay_fixed(api, files):
    missing = api.open("mgh/new", files)
    assert missing.status == 400 and "tier" in missing.body["error"]
    unknown = api.open("mgh/new", files, tier="secret")
    assert unknown.status == 400 and "open" in unknown.body["error"]
    assert api.publish("mgh/new", files, tier="open", tag="v1").status == 200
    changed = api.open("mgh/new", files, tier="credentialed")
    assert changed.status == 409 and "tier" in changed.body["error"]
    taken = api.open("mgh/new", {**files, "notes.txt": b"other files"}, tag="v1")
    assert taken.status == 409 and "v1" in taken.body["error"]
    digits = api.open("mgh/new", files, tag="2")
    assert digits.status == 400 and "v2" in digits.body["error"]


def test_only_publishers_of_the_namespace_may_upload(registry, client, files):
    def api_for(email: str, **kwargs) -> UploadApi:
        scope = kwargs.pop("scope", "write")
        return UploadApi(make_token(registry, make_user(registry, email, **kwargs), scope),
                         client=client)  # fmt: skip

    outsider = api_for("x@bwh.org", institution="bwh")
    assert api_for("m@mgh.org", institution="mgh").publish(
        "mgh/cxr", files, tier="open", tag="v1"
    ).status == 200  # fmt: skip
    assert outsider.open("mgh/cxr", files, tag="v2").status == 403
    assert outsider.open("mgh/other", files, tier="open").status == 403
    member = api_for("r@mgh.org", institution="mgh", role="member")
    assert member.open("mgh/cxr", files, tag="v2").status == 403
    reader = api_for("p@mgh.org", institution="mgh", scope="read")
    denied = reader.open("mgh/cxr", files, tag="v2")
    assert denied.status == 403 and "scope" in denied.body["error"]
    anonymous = client.post("/api/v1/uploads", json={"repo": "mgh/cxr", "files": []})
    assert anonymous.status_code == 401

    session = api_for("q@mgh.org", institution="mgh").open("mgh/cxr", files, tag="v2").body
    assert outsider.session(session["id"]).status == 403
    assert outsider.put(session, WEIGHTS, files[WEIGHTS]).status == 403
    assert outsider.commit(session["id"]).status == 403


def test_nothing_is_visible_before_publishing(api, client, files):
    session = api.open("mgh/cxr-tiny", files, tier="open", tag="v1").body
    api.send_all(session, files)
    assert client.get("/api/models/mgh/cxr-tiny").status_code == 404
    assert client.get("/api/models").get_json() == []
    assert client.get(f"/mgh/cxr-tiny/resolve/main/{WEIGHTS}").status_code == 404
    assert client.get("/api/v1/models/mgh/cxr-tiny/versions/v1/manifest").status_code == 404


def test_abort_drops_staged_bytes(api, registry, files):
    session = api.open("mgh/cxr-tiny", files, tier="open").body
    assert api.put(session, WEIGHTS, files[WEIGHTS][:1000], 0, len(files[WEIGHTS])).status == 200
    assert list(registry.blobs.iter_staging())
    aborted = api.call("DELETE", f"/api/v1/uploads/{session['id']}")
    assert aborted.status == 200 and aborted.body["state"] == "aborted"
    assert list(registry.blobs.iter_staging()) == []
    late = api.put(session, WEIGHTS, files[WEIGHTS][:1000], 0, len(files[WEIGHTS]))
    assert late.status == 410 and "aborted" in late.body["error"]
    assert api.commit(session["id"]).status == 410


def test_abandoned_sessions_expire_and_gc_collects_them(api, registry, files):
    from registry.publishing.gc import collect_garbage

    session = api.open("mgh/cxr-tiny", files, tier="open").body
    assert api.put(session, WEIGHTS, files[WEIGHTS][:1000], 0, len(files[WEIGHTS])).status == 200
    hours = registry.settings.upload_session_hours
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours + 1)
    registry.clock = lambda: later
    expired = api.put(session, WEIGHTS, files[WEIGHTS][1000:2000], 1000, len(files[WEIGHTS]))
    assert expired.status == 410 and "expired" in expired.body["error"]
    with unit_of_work(registry.sessions) as db:
        report = collect_garbage(db, registry.blobs, now=later, grace=dt.timedelta(hours=1))
    assert report.expired_sessions == [session["id"]]
    assert list(registry.blobs.iter_staging()) == []
    assert api.session(session["id"]).body["state"] == "expired"


def test_a_mismatching_file_restarts_from_zero(api, files):
    session = api.open("mgh/cxr-tiny", files, tier="open").body
    data = files[WEIGHTS]
    wrong = bytearray(data)
    wrong[-1] ^= 1
    refused = api.put(session, WEIGHTS, bytes(wrong))
    assert refused.status == 422
    assert refused.body["problems"][0]["field"] == WEIGHTS
    assert f"expected {sha256(data)}" in refused.body["problems"][0]["problem"]
    status = {f["path"]: f for f in api.session(session["id"]).body["files"]}
    assert status[WEIGHTS]["received"] == 0 and not status[WEIGHTS]["complete"]
    assert api.put(session, WEIGHTS, data).status == 200


def test_concurrent_first_uploads_of_one_new_model_never_fail_badly(registry, live_server, files):
    import threading

    token = make_token(registry, make_user(registry, "pub@mgh.org", institution="mgh"))
    barrier = threading.Barrier(3)
    statuses: list[int] = []

    def open_new() -> None:
        api = UploadApi(token, url=live_server.url)
        barrier.wait(timeout=30)
        statuses.append(api.open("mgh/brand-new", files, tier="open").status)

    threads = [threading.Thread(target=open_new) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(statuses) == 3 and set(statuses) <= {201, 409} and 201 in statuses, statuses
