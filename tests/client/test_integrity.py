"""Refusals: a corrupted blob, a forged signature, a changed registry key, a rollback.
Each is refused with a clear message and nothing lands in the cache as valid."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, select

from client.errors import HashMismatch, KeyChanged, RollbackRefused, SignatureInvalid
from client.errors import VersionWithdrawn as WithdrawnError
from tests.client.conftest import run_cli
from tests.fixtures.repos import publish_folder

UNET = "unet/diffusion_pytorch_model.safetensors"


def _version(db, commit: str):
    from registry.models import Version

    return db.scalar(select(Version).where(Version.commit == commit))


def _nothing_cached(client, repo: str, commit: str, shas: list[str] = ()) -> None:
    assert not client.cache.version_dir(repo, commit).exists()
    assert client.cache.read_manifest_record(repo, commit) is None
    for sha in shas:
        assert not client.cache.blob_path(sha).exists()


def _at(registry, day: int) -> None:
    moment = dt.datetime(2026, 3, day, 12, 0, tzinfo=dt.UTC)
    registry.clock = lambda: moment


def test_corrupted_blob_on_the_server_is_refused(
    registry, make_client, counted_server, client_dirs, model_copy: Path
):
    published = publish_folder(registry, "demo/tiny", model_copy, tier="open")
    sha = hashlib.sha256((model_copy / UNET).read_bytes()).hexdigest()
    stored = registry.blobs.local_path(sha)
    os.chmod(stored, 0o644)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes
    stored.write_bytes(bytes(data))

    client = make_client()
    with pytest.raises(HashMismatch, match="does not match the signed manifest"):
        client.pull("demo/tiny", quiet=True)
    _nothing_cached(client, "demo/tiny", published.commit, [sha])

    done = run_cli("--url", counted_server.url, "pull", "demo/tiny", "-q")
    assert done.returncode == 7
    assert UNET in done.stderr and "corrupted" in done.stderr
    _nothing_cached(client, "demo/tiny", published.commit, [sha])


def test_manifest_signed_by_another_key_is_refused(registry, make_client, open_tiny):
    forged = Ed25519PrivateKey.generate()
    with registry.sessions() as db, db.begin():
        version = _version(db, open_tiny.commit)
        version.signature = base64.b64encode(forged.sign(version.manifest.encode())).decode()

    client = make_client()
    with pytest.raises(SignatureInvalid, match="signed by another key or altered"):
        client.pull("demo/tiny", quiet=True)
    _nothing_cached(client, "demo/tiny", open_tiny.commit)
    assert not (client.cache.root / "blobs").exists()


def test_a_changed_registry_key_is_refused_until_accepted(
    registry, make_client, counted_server, client_dirs, tiny_model_dir
):
    from registry.models import SigningKey

    _at(registry, 1)
    publish_folder(registry, "demo/tiny", tiny_model_dir, tier="open", tag="v1")
    client = make_client()
    client.pull("demo/tiny", quiet=True)
    pinned = dict(client.trust.registry_keys())

    # The registry is rebuilt with a fresh key: the pinned one is gone from /api/v1/keys.
    with registry.sessions() as db, db.begin():
        db.execute(delete(SigningKey))
    _at(registry, 2)
    v2 = publish_folder(registry, "demo/tiny", tiny_model_dir, tier="open", tag="v2")

    with pytest.raises(KeyChanged, match="has CHANGED") as refused:
        client.pull("demo/tiny", quiet=True)
    assert "trust-key" in refused.value.message and "--accept-new-key" in refused.value.message
    assert client.trust.registry_keys() == pinned
    _nothing_cached(client, "demo/tiny", v2.commit)

    done = run_cli("--url", counted_server.url, "pull", "demo/tiny", "-q")
    assert done.returncode == 8 and "CHANGED" in done.stderr

    accepted = run_cli("--url", counted_server.url, "pull", "demo/tiny", "-q", "--accept-new-key")
    assert accepted.returncode == 0, accepted.stderr
    assert Path(accepted.stdout.strip()).name == v2.commit
    assert len(make_client().trust.registry_keys()) == 2


def test_trust_key_command_accepts_a_new_key_explicitly(
    registry, make_client, counted_server, client_dirs, tiny_model_dir
):
    from registry.models import SigningKey

    _at(registry, 1)
    publish_folder(registry, "demo/tiny", tiny_model_dir, tier="open", tag="v1")
    make_client().pull("demo/tiny", quiet=True)
    with registry.sessions() as db, db.begin():
        db.execute(delete(SigningKey))
    _at(registry, 2)
    v2 = publish_folder(registry, "demo/tiny", tiny_model_dir, tier="open", tag="v2")
    new_key = make_client().registry_keys()
    (key_id,) = new_key

    done = run_cli("--url", counted_server.url, "trust-key", key_id[:12])
    assert done.returncode == 0, done.stderr
    assert "SHA256:" in done.stdout
    assert make_client().pull("demo/tiny", quiet=True).commit == v2.commit


def test_a_rotated_key_listed_beside_the_pinned_one_is_accepted(
    registry, make_client, tiny_model_dir
):
    from registry.publishing import signing

    _at(registry, 1)
    v1 = publish_folder(registry, "demo/tiny", tiny_model_dir, tier="open", tag="v1")
    client = make_client()
    client.pull("demo/tiny", quiet=True)
    with registry.sessions() as db, db.begin():
        signing.rotate(db, registry.settings, registry.now())
    _at(registry, 2)
    v2 = publish_folder(registry, "demo/tiny", tiny_model_dir, tier="open", tag="v2")

    assert client.pull("demo/tiny", quiet=True).commit == v2.commit
    assert any("rotated its signing key" in n for n in client.notices)
    assert len(client.trust.registry_keys()) == 2
    # The old version still verifies with the retired (still pinned) key.
    assert client.pull(f"demo/tiny@{v1.commit}", quiet=True).commit == v1.commit
    assert client.verify("demo/tiny@v1") == []


def test_an_older_manifest_for_main_is_a_rollback(registry, make_client, tiny_model_dir):
    _at(registry, 1)
    v1 = publish_folder(registry, "demo/tiny", tiny_model_dir, tier="open", tag="v1")
    _at(registry, 2)
    v2 = publish_folder(registry, "demo/tiny", tiny_model_dir, tier="open", tag="v2")
    client = make_client()
    assert client.pull("demo/tiny", quiet=True).commit == v2.commit

    # A compromised or stale registry serves the older (validly signed) manifest for main.
    with registry.sessions() as db, db.begin():
        _version(db, v1.commit).published_seq = 99
    with pytest.raises(RollbackRefused, match="Rollback refused") as refused:
        client.pull("demo/tiny", quiet=True)
    assert v2.commit in refused.value.message and v1.commit in refused.value.message
    _nothing_cached(client, "demo/tiny", v1.commit)

    # Asking for the older version by its commit id (which hashes its manifest) is fine.
    assert client.pull(f"demo/tiny@{v1.commit}", quiet=True).commit == v1.commit


def test_a_moved_tag_is_refused(registry, make_client, tiny_model_dir):
    from registry.models import Tag

    _at(registry, 1)
    publish_folder(registry, "demo/tiny", tiny_model_dir, tier="open", tag="v1")
    _at(registry, 2)
    v2 = publish_folder(registry, "demo/tiny", tiny_model_dir, tier="open", tag="v2")
    client = make_client()
    client.pull("demo/tiny@v1", quiet=True)
    with registry.sessions() as db, db.begin():
        tag = db.scalar(select(Tag).where(Tag.name == "v1"))
        tag.version_id = _version(db, v2.commit).id
        db.execute(delete(Tag).where(Tag.name == "v2"))

    with pytest.raises(RollbackRefused, match="published tags never move"):
        client.pull("demo/tiny@v1", quiet=True)


def test_withdrawn_versions_are_refused_and_main_moves_back(registry, make_client, tiny_model_dir):
    from registry.publishing.withdrawal import withdraw_version

    _at(registry, 1)
    v1 = publish_folder(registry, "demo/tiny", tiny_model_dir, tier="open", tag="v1")
    _at(registry, 2)
    v2 = publish_folder(registry, "demo/tiny", tiny_model_dir, tier="open", tag="v2")
    client = make_client()
    client.pull("demo/tiny", quiet=True)
    with registry.sessions() as db, db.begin():
        withdraw_version(db, _version(db, v2.commit), "label leak", actor=None, now=registry.now())

    with pytest.raises(WithdrawnError, match="label leak"):
        client.pull("demo/tiny@v2", quiet=True)
    assert client.pull("demo/tiny", quiet=True).commit == v1.commit
    assert any("was withdrawn (label leak)" in n for n in client.notices)


def test_withdrawn_files_map_to_exit_6_even_with_a_stock_compatible_header():
    from client.errors import error_from_response

    headers = {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "withdrawn: leak"}
    body = b'{"code": "VersionWithdrawn", "error": "demo/tiny version abc was withdrawn: leak"}'
    for content in (body, b""):  # GET carries the body; HEAD only the headers
        error = error_from_response(410, headers, content, url="http://r/demo/tiny/resolve/x/y")
        assert isinstance(error, WithdrawnError) and error.exit_code == 6
        assert "withdrawn" in error.message
