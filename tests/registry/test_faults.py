"""Outages of the database or the object store give 503 with a clear message, never a 500,
and service recovers by itself when the backend returns."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tests.conftest import make_settings
from tests.fixtures.faults import CuttableProxy
from tests.fixtures.repos import publish_folder


def _wait_for(url: str, status: int, timeout: float = 30.0) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = requests.get(url, timeout=10)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.3)


@pytest.fixture
def s3_proxy(s3_endpoint: str):
    """The S3 endpoint behind a proxy that can cut it off (moto loses data on restart)."""
    port = int(s3_endpoint.rsplit(":", 1)[1])
    proxy = CuttableProxy("127.0.0.1", port)
    yield proxy
    proxy.close()


@pytest.fixture
def s3_fault_settings(database_url: str, tmp_path: Path, s3_proxy: CuttableProxy):
    from registry.storage.s3 import S3BlobStore
    from tests.fixtures.s3 import s3_url

    url = s3_url(f"http://127.0.0.1:{s3_proxy.port}", f"faults-{tmp_path.name[-12:].lower()}")
    S3BlobStore.from_url(url).ensure_bucket()
    # s3_redirect off: downloads stream through the registry, so the outage hits it.
    return make_settings(database_url, tmp_path, storage_url=url, s3_redirect=False)


def test_s3_outage_gives_503_and_recovers(s3_fault_settings, s3_proxy, tiny_model_dir):
    from registry.app import create_app
    from tests.conftest import LiveServer

    app = create_app(settings=s3_fault_settings)
    registry = app.extensions["registry"]
    publish_folder(registry, "demo/faulty", tiny_model_dir)
    server = LiveServer(app)
    url = f"{server.url}/demo/faulty/resolve/main/model_index.json"
    try:
        assert requests.get(url, timeout=10).status_code == 200
        s3_proxy.cut()
        down = requests.get(url, timeout=30)
        assert down.status_code == 503
        assert down.headers["X-Error-Code"] == "ServiceUnavailable"
        assert "storage" in down.headers["X-Error-Message"]
        health = requests.get(f"{server.url}/api/v1/health", timeout=30)
        assert health.status_code == 503
        # Metadata reads that need no blob keep working.
        assert requests.get(f"{server.url}/api/models/demo/faulty", timeout=10).ok
        s3_proxy.restore()
        back = _wait_for(url, 200)
        assert back.status_code == 200
        assert back.content == (tiny_model_dir / "model_index.json").read_bytes()
    finally:
        server.stop()
        app.extensions["registry"].engine.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgres_outage_gives_503_and_recovers(
    database_url, tmp_path, postgres_proxy: CuttableProxy, tiny_model_dir
):
    from registry.app import create_app
    from tests.conftest import LiveServer

    proxied = database_url.replace("127.0.0.1:5432", f"127.0.0.1:{postgres_proxy.port}")
    settings = make_settings(proxied, tmp_path)
    app = create_app(settings=settings)
    publish_folder(app.extensions["registry"], "demo/pg", tiny_model_dir)
    server = LiveServer(app)
    info = f"{server.url}/api/models/demo/pg"
    try:
        assert requests.get(info, timeout=10).status_code == 200
        postgres_proxy.cut()
        for _ in range(3):  # pooled connections die, new ones are refused
            down = requests.get(info, timeout=30)
            assert down.status_code == 503, down.text
            assert "database" in down.headers["X-Error-Message"]
        download = requests.get(f"{server.url}/demo/pg/resolve/main/model_index.json", timeout=30)
        assert download.status_code == 503
        postgres_proxy.restore()
        assert _wait_for(info, 200).status_code == 200
    finally:
        server.stop()
        app.extensions["registry"].engine.dispose()


def _staged_and_stored_bytes(root: Path) -> int:
    """Bytes of staged upload data and stored blobs under a local store (markers excluded)."""
    staged = sum(p.stat().st_size for p in root.glob("staging/*/data"))
    stored = sum(p.stat().st_size for p in root.glob("sha256/**/*") if p.is_file())
    return staged + stored


def test_full_disk_refuses_the_upload_cleanly_and_it_finishes_later(
    database_url, tmp_path, tiny_disk, tiny_model_dir
):
    """A chunk that does not fit gets 507 with a message; nothing of it stays on disk or in
    the session, nothing is published, and the same session finishes once there is room."""
    from registry.app import create_app
    from tests.registry.publishing_helpers import UploadApi, folder_files, make_token, make_user

    blobs = tiny_disk.path / "blobs"
    settings = make_settings(database_url, tmp_path, storage_url=blobs.as_uri())
    app = create_app(settings=settings)
    try:
        registry, client = app.extensions["registry"], app.test_client()
        user = make_user(registry, "pub@mgh.org", institution="mgh", role="publisher")
        api = UploadApi(make_token(registry, user), client=client)
        files = folder_files(tiny_model_dir)  # ~3.7 MB in all: more than the 2 MiB disk
        session = api.open("mgh/cxr-full", files, tier="open").body

        refused = []
        for path, data in sorted(files.items(), key=lambda item: -len(item[1])):
            reply = api.put(session, path, data)
            if reply.status != 200:
                refused.append((path, reply))
        assert refused, "the disk should have filled up"
        for path, reply in refused:
            assert reply.status == 507, (path, reply.status, reply.body)
            assert reply.headers["X-Error-Code"] == "InsufficientStorage"
            assert "storage is full" in reply.headers["X-Error-Message"]
            assert str(tiny_disk.path) not in reply.headers["X-Error-Message"]

        state = api.session(session["id"]).body
        received = {f["path"]: f["received"] for f in state["files"]}
        assert all(received[path] == 0 for path, _ in refused)  # all or nothing per chunk
        assert _staged_and_stored_bytes(blobs) == sum(received.values())
        assert not any((blobs / "tmp").iterdir())
        assert 400 <= api.commit(session["id"]).status < 500  # incomplete: nothing published
        assert client.get("/api/models/mgh/cxr-full").status_code == 404

        tiny_disk.grow(64)
        api.send_all(state, files)
        committed = api.commit(session["id"])
        assert committed.status == 200, committed.body
        weights = "unet/diffusion_pytorch_model.safetensors"
        got = client.get(f"/mgh/cxr-full/resolve/main/{weights}")
        assert got.status_code == 200 and got.data == files[weights]
        got.close()  # send_file holds the blob open; the disk is unmounted after the test
    finally:
        app.extensions["registry"].engine.dispose()


def test_s3_outage_mid_upload_keeps_the_session_consistent(
    s3_fault_settings, s3_proxy, tiny_model_dir
):
    """Cut the object store between chunks and during the commit: 503s with a message, the
    session keeps exactly the confirmed bytes, nothing is published until the commit that
    succeeds, and the upload resumes where it stopped."""
    from registry.app import create_app
    from tests.registry.publishing_helpers import UploadApi, folder_files, make_token, make_user

    app = create_app(settings=s3_fault_settings)
    try:
        registry, client = app.extensions["registry"], app.test_client()
        user = make_user(registry, "pub@mgh.org", institution="mgh", role="publisher")
        api = UploadApi(make_token(registry, user), client=client)
        files = folder_files(tiny_model_dir)
        weights = "unet/diffusion_pytorch_model.safetensors"
        data = files[weights]
        session = api.open("mgh/cxr-s3", files, tier="open").body
        half = len(data) // 2
        assert api.put(session, weights, data[:half], 0, len(data)).status == 200

        s3_proxy.cut()
        down = api.put(session, weights, data[half:], half, len(data))
        assert down.status == 503, down.body
        assert "storage" in down.headers["X-Error-Message"]

        s3_proxy.restore()
        state = _retry_until_ok(lambda: api.session(session["id"])).body
        entry = next(f for f in state["files"] if f["path"] == weights)
        assert entry["received"] == half and not entry["complete"]
        api.send_all(state, files)  # resumes at each file's offset
        s3_proxy.cut()
        failed = api.commit(session["id"])
        assert failed.status == 503, failed.body
        assert "storage" in failed.headers["X-Error-Message"]
        assert client.get("/api/models/mgh/cxr-s3").status_code == 404

        s3_proxy.restore()
        assert _retry_until_ok(lambda: api.session(session["id"])).body["state"] == "open"
        committed = _retry_until_ok(lambda: api.commit(session["id"]))
        assert committed.status == 200, committed.body
        assert committed.body["state"] == "published"
        got = client.get(f"/mgh/cxr-s3/resolve/main/{weights}")
        assert got.status_code == 200 and got.data == data
        versions = client.get("/api/models/mgh/cxr-s3").get_json()
        assert versions["sha"] == committed.body["version"]["commit"]
    finally:
        app.extensions["registry"].engine.dispose()


def _retry_until_ok(call, timeout: float = 30.0):
    """The first calls after the store returns may still see pooled dead connections."""
    deadline = time.monotonic() + timeout
    while True:
        reply = call()
        if reply.status != 503 or time.monotonic() > deadline:
            return reply
        time.sleep(0.3)
