"""``push``: local validation before any byte, resumable upload, commit, publisher signature."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from client.errors import ServerUnavailable, SignatureInvalid
from client.push import Uploader
from tests.client.conftest import run_cli


@pytest.fixture
def publisher(people) -> str:
    return people.token(people.user("pub@mgh.org", institution="mgh", role="publisher"), "write")


def _break(folder: Path) -> None:
    (folder / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")
    (folder / "vae" / "config.json").unlink()
    (folder / "text_encoder" / "config.json").write_text("{not json", encoding="utf-8")
    card = (folder / "README.md").read_text(encoding="utf-8")
    (folder / "README.md").write_text(card.replace("license: apache-2.0\n", ""), encoding="utf-8")


def test_a_folder_with_problems_is_refused_before_any_request(
    counted_server, client_dirs, publisher, model_copy
):
    _break(model_copy)

    done = run_cli(
        "--url", counted_server.url, "--token", publisher, "push", str(model_copy), "mgh/broken",
        "--tag", "v1",
    )  # fmt: skip

    assert done.returncode == 9
    for expected in (
        "unet/diffusion_pytorch_model.bin",
        "vae/config.json",
        "text_encoder/config.json",
        "README.md",
    ):
        assert expected in done.stderr
    assert "nothing was sent" in done.stderr
    assert counted_server.traffic.requests == []


def test_push_uploads_commits_and_the_version_pulls_back(
    counted_server, client_dirs, publisher, model_copy, make_client
):
    done = run_cli(
        "--url", counted_server.url, "--token", publisher, "push", str(model_copy), "mgh/tiny",
        "--tag", "v1", "-q",
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "mgh/tiny: published" in done.stdout
    assert f"{counted_server.url}/models/mgh/tiny" in done.stdout
    pulled = make_client().pull("mgh/tiny@v1", quiet=True)
    for path in model_copy.rglob("*"):
        if path.is_file():
            assert (pulled.path / path.relative_to(model_copy)).read_bytes() == path.read_bytes()


def test_an_interrupted_push_resumes_its_session(
    monkeypatch, counted_server, client_dirs, publisher, model_copy, make_client
):
    monkeypatch.setattr("client.push.CHUNK_SIZE", 256 * 1024)
    client = make_client(publisher)
    real_request = client.http.request
    puts, stored = [], []  # every PUT tried; the bytes of those the registry answered

    def failing_request(method, path, **kwargs):
        if method == "PUT":
            puts.append(len(kwargs.get("data") or b""))
            if len(puts) == 4:
                raise ServerUnavailable("connection reset (simulated)")
        response = real_request(method, path, **kwargs)
        if method == "PUT":  # files go in parallel: others may finish after the failure
            stored.append(len(kwargs.get("data") or b""))
        return response

    monkeypatch.setattr(client.http, "request", failing_request)
    uploader = Uploader(client.http, client_dirs["cache"] / "uploads", quiet=True, notify=print)
    with pytest.raises(ServerUnavailable):
        uploader.push(model_copy, "mgh/tiny", tag="v1")
    sent_before = sum(stored)

    monkeypatch.setattr(client.http, "request", real_request)
    notices: list[str] = []
    uploader = Uploader(client.http, client_dirs["cache"] / "uploads", quiet=True,
                        notify=notices.append)  # fmt: skip
    result = uploader.push(model_copy, "mgh/tiny", tag="v1")

    total = sum(p.stat().st_size for p in model_copy.rglob("*") if p.is_file())
    assert any("Resuming upload session" in n for n in notices)
    assert result.state == "published"
    assert result.bytes_sent == total - sent_before


def test_publisher_signature_is_made_and_verified(
    people, counted_server, client_dirs, publisher, model_copy, make_client, tmp_path, registry
):
    from sqlalchemy import select

    from registry.models import Version

    admin = people.token(people.user("boss@mgh.org", institution="mgh",
                                     role="institution-admin"), "admin")  # fmt: skip
    key = Ed25519PrivateKey.generate()
    public = base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    registered = requests.post(
        f"{counted_server.url}/api/v1/institutions/mgh/keys",
        json={"public_key": public.decode()},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=30,
    )
    assert registered.status_code == 201, registered.text
    pem = tmp_path / "mgh.pem"
    pem.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))

    done = run_cli(
        "--url", counted_server.url, "--token", publisher, "push", str(model_copy), "mgh/tiny",
        "--tag", "v1", "--sign-key", str(pem), "-q",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    client = make_client()
    result = client.pull("mgh/tiny", quiet=True)
    assert result.manifest.publisher_signed
    assert registered.json()["key_id"] in client.trust.institution_keys("mgh")

    # A registry cannot fake the institution's signature, even for a version already cached.
    forged = Ed25519PrivateKey.generate()
    with registry.sessions() as db, db.begin():
        version = db.scalar(select(Version).where(Version.commit == result.commit))
        version.publisher_signature = base64.b64encode(
            forged.sign(version.manifest.encode())
        ).decode()
    with pytest.raises(SignatureInvalid, match="publisher signature"):
        make_client().pull(f"mgh/tiny@{result.commit}", quiet=True)
    record = json.loads(client.cache.manifest_record_path("mgh/tiny", result.commit).read_text())
    assert record["publisher_signature"] != version.publisher_signature


def test_a_gated_push_with_a_base_model_goes_to_review(
    counted_server, client_dirs, publisher, model_copy, make_client
):
    first = run_cli("--url", counted_server.url, "--token", publisher, "push", str(model_copy),
                    "mgh/base", "--tag", "v1", "-q")  # fmt: skip
    assert first.returncode == 0, first.stderr

    done = run_cli(
        "--url", counted_server.url, "--token", publisher, "push", str(model_copy), "mgh/site",
        "--tag", "v1", "--tier", "credentialed", "--base", "mgh/base@v1", "-q",
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "mgh/site: in-review" in done.stdout and "review" in done.stdout
    version = make_client(publisher).version(
        "mgh/site", done.stdout.split("version ")[1].split(",")[0]
    )
    assert version["state"] == "in-review" and version["base_model"].startswith("mgh/base@")


def test_a_push_into_an_unknown_namespace_says_how_to_get_one(
    counted_server, client_dirs, publisher, model_copy
):
    done = run_cli(
        "--url", counted_server.url, "--token", publisher, "push", str(model_copy),
        "newcomer/copy",
    )  # fmt: skip
    assert done.returncode != 0
    assert "No institution 'newcomer'" in done.stderr
    assert "mgh/copy" in done.stderr  # the namespace this publisher can push into
    assert "registry administrator" in done.stderr  # and who creates a new one
