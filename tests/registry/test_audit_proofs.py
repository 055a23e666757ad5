"""Receipts and consistency: a download's event is proven to be in the signed log (a forged
receipt is not), checkpoints are public, and each one provably extends the ones before."""

from __future__ import annotations

import copy
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import client.merkle as merkle
from client.errors import IntegrityError
from client.verify import verify_signature
from client.witness import verify_receipt
from registry.publishing.signing import b64, key_id, public_raw
from tests.registry.audit_helpers import seal, sealed_events

FILE = "model_index.json"


def _keys(api) -> dict[str, str]:
    return {k["key_id"]: k["public_key"] for k in api("GET", "/api/v1/keys").json["keys"]}


def test_a_download_receipt_verifies_and_a_forged_one_does_not(
    api, people, registry, gated_model
) -> None:
    token = people.token(people.researcher("res@example.org"), "read")
    assert api("GET", f"/{gated_model.repo_id}/resolve/main/{FILE}", token=token).status_code == 200
    assert sealed_events(registry) == []  # nothing sealed yet: a receipt has to wait
    admin = people.token(people.user("root@example.org", admin=True), "read")
    pending = api("GET", "/api/v1/audit?action=version:download", token=admin).json["events"][0]
    waiting = api("GET", f"/api/v1/audit/events/{pending['id']}/proof", token=token)
    assert waiting.status_code == 409 and waiting.json["code"] == "EventPending"
    assert waiting.headers["Retry-After"]

    seal(registry)
    for _ in range(3):  # more events after it, so the proof has a real path
        api("GET", f"/{gated_model.repo_id}/resolve/main/{FILE}", token=token)
    seal(registry)
    download = next(e for e in sealed_events(registry) if e.tag == "version:download")
    receipt = api("GET", f"/api/v1/audit/events/{download.id}/proof", token=token)
    assert receipt.status_code == 200, receipt.json
    receipt = receipt.json
    assert receipt["tree_size"] > download.seq and receipt["path"]
    event = verify_receipt(receipt, _keys(api))
    assert event["actor"] == "res@example.org"
    assert event["target"] == f"{gated_model.repo_id}@{gated_model.commit}/{FILE}"
    assert event["seq"] == download.seq and event["tag"] == "version:download"

    # Against an earlier checkpoint too (the one it was first sealed under).
    first = api("GET", "/api/v1/audit/checkpoints").json["checkpoints"][0]
    early = api(
        "GET", f"/api/v1/audit/events/{download.id}/proof?checkpoint={first['size']}", token=token
    ).json
    assert verify_receipt(early, _keys(api))["id"] == download.id

    forgeries = {
        "someone else downloaded": _edit_leaf(receipt, actor="other@example.org"),
        "another file": _edit_leaf(receipt, target="mgh/other@x/weights.safetensors"),
        "another place in the log": _edit_leaf(receipt, seq=download.seq + 1),
        "a tampered path": _flip_path(receipt),
        "a checkpoint with another root": _other_root(receipt),
    }
    for what, forged in forgeries.items():
        with pytest.raises(IntegrityError):
            verify_receipt(forged, _keys(api))
            pytest.fail(f"a receipt with {what} verified")

    # A checkpoint signed by a key that is not the registry's proves nothing either.
    stranger = Ed25519PrivateKey.generate()
    resigned = _resign(receipt, stranger)
    with pytest.raises(IntegrityError, match="unknown key"):
        verify_receipt(resigned, _keys(api))


def test_who_may_fetch_a_receipt(api, people, registry, gated_model) -> None:
    token = people.token(people.researcher("res@example.org"), "read")
    api("GET", f"/{gated_model.repo_id}/resolve/main/{FILE}", token=token)
    seal(registry)
    download = next(e for e in sealed_events(registry) if e.tag == "version:download")
    url = f"/api/v1/audit/events/{download.id}/proof"
    owner = people.token(people.user("pub@demo.org", institution="demo", role="publisher"))
    outsider = people.token(people.researcher("nosy@example.org"), "read")
    admin = people.token(people.user("root@example.org", admin=True), "read")
    assert api("GET", url).status_code == 401
    assert api("GET", url, token=outsider).status_code == 403
    for allowed in (token, owner, admin):
        assert api("GET", url, token=allowed).status_code == 200
    assert api("GET", "/api/v1/audit/events/999999/proof", token=admin).status_code == 404
    assert api("GET", "/api/v1/audit/events/999999/proof", token=outsider).status_code == 403


def test_checkpoints_are_public_and_each_extends_the_last(
    api, people, registry, gated_model
) -> None:
    assert api("GET", "/api/v1/audit/checkpoints/latest").status_code == 404
    token = people.token(people.researcher("res@example.org"), "read")
    for _ in range(5):
        api("GET", f"/{gated_model.repo_id}/resolve/main/{FILE}", token=token)
        seal(registry)
    listed = api("GET", "/api/v1/audit/checkpoints").json["checkpoints"]
    sizes = [c["size"] for c in listed]
    assert len(sizes) >= 5 and sizes == sorted(set(sizes))
    keys = _keys(api)
    for record in listed:
        body = merkle.check_signature(record, keys, verify_signature)
        assert api("GET", f"/api/v1/audit/checkpoints/{body['size']}").json == record
    assert api("GET", "/api/v1/audit/checkpoints/latest").json == listed[-1]
    assert api("GET", f"/api/v1/audit/checkpoints/{sizes[-1] + 7}").status_code == 404
    assert api("GET", "/api/v1/audit/checkpoints?after=0&limit=2").json["next_after"] == sizes[1]

    for old in listed[:-1]:
        for new in listed[listed.index(old) + 1 :]:
            answer = api("GET", f"/api/v1/audit/consistency?from={old['size']}&to={new['size']}")
            assert answer.status_code == 200
            merkle.verify_consistency(
                old["size"],
                new["size"],
                bytes.fromhex(old["root"]),
                bytes.fromhex(new["root"]),
                merkle.hex_list(answer.json["proof"], "proof"),
            )
    # A proof does not carry a forged old root.
    answer = api("GET", f"/api/v1/audit/consistency?from={sizes[1]}").json
    assert answer["new_size"] == sizes[-1]
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(
            sizes[1],
            sizes[-1],
            bytes.fromhex(listed[0]["root"]),
            bytes.fromhex(listed[-1]["root"]),
            merkle.hex_list(answer["proof"], "proof"),
        )
    assert api("GET", "/api/v1/audit/consistency").status_code == 400
    assert api("GET", f"/api/v1/audit/consistency?from={sizes[-1] + 1}").status_code == 404


def _edit_leaf(receipt: dict, **changes) -> dict:
    forged = copy.deepcopy(receipt)
    leaf = json.loads(forged["leaf"])
    leaf.update(changes)
    forged["leaf"] = json.dumps(leaf, sort_keys=True, separators=(",", ":"))
    return forged


def _flip_path(receipt: dict) -> dict:
    forged = copy.deepcopy(receipt)
    first = forged["path"][0]
    forged["path"][0] = ("0" if first[0] != "0" else "1") + first[1:]
    return forged


def _other_root(receipt: dict) -> dict:
    forged = copy.deepcopy(receipt)
    body = json.loads(forged["checkpoint"]["body"])
    body["root"] = "ab" * 32
    forged["checkpoint"]["body"] = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return forged


def _resign(receipt: dict, key: Ed25519PrivateKey) -> dict:
    forged = copy.deepcopy(receipt)
    body = json.loads(forged["checkpoint"]["body"])
    body["key_id"] = key_id(public_raw(key))
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    forged["checkpoint"].update(body=text, signature=b64(key.sign(text.encode())))
    return forged
