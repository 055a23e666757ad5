"""Signed manifests: registry signatures verify with the served keys, tampering is caught,
publisher signatures are checked at commit, keys rotate and are created exactly once."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from registry.unit_of_work import unit_of_work
from tests.registry.publishing_helpers import UploadApi, folder_files, make_token, make_user


@pytest.fixture
def files(tiny_model_dir: Path) -> dict[str, bytes]:
    return folder_files(tiny_model_dir)


@pytest.fixture
def publisher(registry, client) -> UploadApi:
    return UploadApi(make_token(registry, make_user(registry, "p@mgh.org", institution="mgh")),
                     client=client)  # fmt: skip


@pytest.fixture
def institution_admin(registry, client) -> UploadApi:
    user = make_user(registry, "ia@mgh.org", institution="mgh", role="institution-admin")
    return UploadApi(make_token(registry, user, scope="admin"), client=client)


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def served_key(client, key_id: str) -> Ed25519PublicKey:
    keys = client.get("/api/v1/keys").get_json()
    assert keys["algorithm"] == "ed25519"
    entry = next(k for k in keys["keys"] if k["key_id"] == key_id)
    raw = base64.b64decode(entry["public_key"])
    assert hashlib.sha256(raw).hexdigest() == key_id
    return Ed25519PublicKey.from_public_bytes(raw)


def test_registry_signature_verifies_and_one_changed_byte_fails(publisher, client, files):
    version = publisher.publish("mgh/cxr", files, tier="open", tag="v1").body["version"]
    doc = client.get("/api/v1/models/mgh/cxr/versions/v1/manifest").get_json()
    body = doc["manifest"].encode("ascii")
    key = served_key(client, doc["key_id"])
    key.verify(base64.b64decode(doc["signature"]), body)
    assert hashlib.sha256(body).hexdigest()[:40] == doc["commit"] == version["commit"]
    manifest = json.loads(body)
    assert manifest["repo"] == "mgh/cxr" and manifest["tier"] == "open"
    assert {f["path"]: f["sha256"] for f in manifest["files"]} == {
        p: hashlib.sha256(b).hexdigest() for p, b in files.items()
    }
    for position in (0, len(body) // 2, len(body) - 1):
        tampered = bytearray(body)
        tampered[position] ^= 0x01
        with pytest.raises(InvalidSignature):
            key.verify(base64.b64decode(doc["signature"]), bytes(tampered))
    by_commit = client.get(f"/api/v1/models/mgh/cxr/versions/{doc['commit']}/manifest")
    assert by_commit.get_json() == doc


def test_publisher_signature_is_verified_at_commit_and_served(
    publisher, institution_admin, registry, client, files
):
    mine, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    registered = institution_admin.call(
        "POST", "/api/v1/institutions/mgh/keys",
        json={"public_key": base64.b64encode(raw_public(mine)).decode()},
    )  # fmt: skip
    assert registered.status == 201, registered.body
    kid = registered.body["key_id"]
    assert kid == hashlib.sha256(raw_public(mine)).hexdigest()
    assert publisher.call("POST", "/api/v1/institutions/mgh/keys",
                          json={"public_key": "x"}).status == 403  # fmt: skip

    session = publisher.open("mgh/cxr", files, tier="open", tag="v1").body
    publisher.send_all(session, files)
    preview = publisher.call("GET", f"/api/v1/uploads/{session['id']}/manifest-preview").body
    registry.clock = lambda: dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    again = publisher.call("GET", f"/api/v1/uploads/{session['id']}/manifest-preview").body
    assert again == preview  # the first preview fixed the time
    body = preview["manifest"].encode("ascii")

    def commit(signature: bytes, key_id: str = kid):
        return publisher.commit(session["id"], publisher_signature=base64.b64encode(signature)
                                .decode(), publisher_key_id=key_id)  # fmt: skip

    wrong_key = commit(other.sign(body))
    assert wrong_key.status == 400 and wrong_key.body["code"] == "SignatureRejected"
    assert "does not verify" in wrong_key.body["error"]
    unknown = commit(other.sign(body), hashlib.sha256(raw_public(other)).hexdigest())
    assert unknown.status == 400 and "not registered" in unknown.body["error"]
    changed = commit(mine.sign(body.replace(b'"tier":"open"', b'"tier":"opem"')))
    assert changed.status == 400
    assert publisher.session(session["id"]).body["state"] == "open"

    accepted = commit(mine.sign(body))
    assert accepted.status == 200, accepted.body
    assert accepted.body["version"]["commit"] == preview["commit"]
    assert accepted.body["version"]["publisher_signed"] is True
    doc = client.get("/api/v1/models/mgh/cxr/versions/v1/manifest").get_json()
    assert doc["manifest"] == preview["manifest"]
    assert doc["publisher_key_id"] == kid
    keys = client.get("/api/v1/institutions/mgh/keys").get_json()["keys"]
    institution_key = Ed25519PublicKey.from_public_bytes(base64.b64decode(keys[0]["public_key"]))
    institution_key.verify(base64.b64decode(doc["publisher_signature"]), body)
    served_key(client, doc["key_id"]).verify(base64.b64decode(doc["signature"]), body)


def test_publisher_signed_version_keeps_its_manifest_through_review(
    publisher, institution_admin, registry, client, files
):
    key = Ed25519PrivateKey.generate()
    kid = institution_admin.call(
        "POST", "/api/v1/institutions/mgh/keys",
        json={"public_key": base64.b64encode(raw_public(key)).decode()},
    ).body["key_id"]  # fmt: skip
    card = files["README.md"].replace(b"access_tier: open", b"access_tier: credentialed")
    files = {**files, "README.md": card}
    session = publisher.open("mgh/gated", files, tier="credentialed").body
    publisher.send_all(session, files)
    preview = publisher.call("GET", f"/api/v1/uploads/{session['id']}/manifest-preview").body
    signature = base64.b64encode(key.sign(preview["manifest"].encode())).decode()
    submitted = publisher.commit(session["id"], publisher_signature=signature,
                                 publisher_key_id=kid)  # fmt: skip
    assert submitted.body["state"] == "in-review"
    admin = UploadApi(make_token(registry, make_user(registry, "a@r.org", admin=True), "admin"),
                      client=client)  # fmt: skip
    registry.clock = lambda: dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    version_id = submitted.body["version"]["id"]
    published = admin.call("POST", f"/api/v1/models/mgh/gated/versions/{version_id}/publish")
    assert published.status == 200, published.body
    doc = client.get("/api/v1/models/mgh/gated/versions/main/manifest").get_json()
    assert doc["manifest"] == preview["manifest"] and doc["commit"] == preview["commit"]
    assert doc["publisher_signature"] == signature


def test_a_sealed_manifest_older_than_a_published_one_is_refused(
    publisher, institution_admin, registry, files
):
    key = Ed25519PrivateKey.generate()
    kid = institution_admin.call(
        "POST", "/api/v1/institutions/mgh/keys",
        json={"public_key": base64.b64encode(raw_public(key)).decode()},
    ).body["key_id"]  # fmt: skip
    start = dt.datetime.now(dt.UTC)
    registry.clock = lambda: start
    sealed = publisher.open("mgh/cxr", files, tier="open", tag="v1").body
    publisher.send_all(sealed, files)
    preview = publisher.call("GET", f"/api/v1/uploads/{sealed['id']}/manifest-preview").body
    registry.clock = lambda: start + dt.timedelta(minutes=1)
    assert publisher.publish("mgh/cxr", {**files, "n.txt": b"newer"}, tag="v2").status == 200
    signature = base64.b64encode(key.sign(preview["manifest"].encode())).decode()
    late = publisher.commit(sealed["id"], publisher_signature=signature, publisher_key_id=kid)
    assert late.status == 409 and "rollback" in late.body["error"]


def test_keys_rotate_and_old_manifests_still_verify(publisher, registry, settings, client, files):
    old = publisher.publish("mgh/cxr", files, tier="open", tag="v1").body["version"]
    env = {
        "REGISTRY_DATABASE_URL": settings.database_url,
        "REGISTRY_STORAGE_URL": settings.storage_url,
        "REGISTRY_SECRET_KEY": settings.secret_key,
        "REGISTRY_INSTANCE_PATH": str(settings.instance_path),
    }
    from registry.cli import main

    rotated = CliRunner().invoke(main, ["keys", "rotate"], env=env)
    assert rotated.exit_code == 0, rotated.output
    keys = client.get("/api/v1/keys").get_json()["keys"]
    assert len(keys) == 2 and [k["active"] for k in keys] == [True, False]
    assert keys[1]["retired_at"] is not None
    new = publisher.publish("mgh/cxr", {**files, "n.txt": b"new"}, tag="v2").body["version"]
    old_doc = client.get(f"/api/v1/models/mgh/cxr/versions/{old['commit']}/manifest").get_json()
    new_doc = client.get(f"/api/v1/models/mgh/cxr/versions/{new['commit']}/manifest").get_json()
    assert old_doc["key_id"] == keys[1]["key_id"] and new_doc["key_id"] == keys[0]["key_id"]
    for doc in (old_doc, new_doc):
        served_key(client, doc["key_id"]).verify(
            base64.b64decode(doc["signature"]), doc["manifest"].encode()
        )
    listed = CliRunner().invoke(main, ["keys", "list"], env=env)
    assert listed.exit_code == 0 and "retired" in listed.output


def test_concurrent_first_starts_create_one_key(registry):
    from registry.models import SigningKey
    from registry.publishing.signing import load_signer

    barrier = threading.Barrier(4)
    ids: list[str] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            with unit_of_work(registry.sessions) as db:
                barrier.wait(timeout=30)
                signer = load_signer(db, registry.settings, registry.now())
                db.commit()
                ids.append(signer.key_id)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(set(ids)) == 1
    with unit_of_work(registry.sessions) as db:
        rows = db.query(SigningKey).all()
        assert len(rows) == 1 and rows[0].retired_at is None


def test_private_key_is_encrypted_with_the_secret_key(registry):
    from registry.config import ConfigError
    from registry.models import SigningKey
    from registry.publishing.signing import load_signer

    with unit_of_work(registry.sessions) as db:
        signer = load_signer(db, registry.settings, registry.now())
        db.commit()
        seed = signer.private_key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )  # fmt: skip
        stored = db.query(SigningKey).one().private_key_encrypted
        assert base64.b64encode(seed).decode() not in stored and seed.hex() not in stored
        other = dataclasses.replace(registry.settings, secret_key="another-secret-key-9876543")
        with pytest.raises(ConfigError, match="cannot decrypt"):
            load_signer(db, other, registry.now())


def test_configured_signing_key_is_used_and_listed(registry, client, publisher, files):
    from registry.publishing.signing import generate_seed

    seed = generate_seed()
    registry.settings = dataclasses.replace(registry.settings, signing_key=seed)
    key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(seed))
    kid = hashlib.sha256(raw_public(key)).hexdigest()
    publisher.publish("mgh/cxr", files, tier="open", tag="v1")
    doc = client.get("/api/v1/models/mgh/cxr/versions/v1/manifest").get_json()
    assert doc["key_id"] == kid
    key.public_key().verify(base64.b64decode(doc["signature"]), doc["manifest"].encode())
    assert [k["key_id"] for k in client.get("/api/v1/keys").get_json()["keys"]] == [kid]
