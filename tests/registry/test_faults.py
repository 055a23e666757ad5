"""Outages of the database or the object store give 503 with a clear message, never a 500,
and service recovers by itself when the backend returns."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

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
    from registry.config import Settings
    from registry.storage.s3 import S3BlobStore
    from tests.fixtures.s3 import s3_url

    url = s3_url(f"http://127.0.0.1:{s3_proxy.port}", f"faults-{tmp_path.name[-12:].lower()}")
    S3BlobStore.from_url(url).ensure_bucket()
    return Settings.from_env(
        {},
        instance_path=tmp_path / "instance",
        database_url=database_url,
        storage_url=url,
        secret_key="test-secret-key-0123456789",
        session_cookie_secure=False,
        ratelimit_enabled=False,
        s3_redirect=False,  # stream through the registry so the outage hits it
    )


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
    from registry.config import Settings
    from tests.conftest import LiveServer

    proxied = database_url.replace("127.0.0.1:5432", f"127.0.0.1:{postgres_proxy.port}")
    settings = Settings.from_env(
        {},
        instance_path=tmp_path / "instance",
        database_url=proxied,
        secret_key="test-secret-key-0123456789",
        session_cookie_secure=False,
        ratelimit_enabled=False,
    )
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
