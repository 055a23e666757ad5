"""Crash safety: SIGKILL the gunicorn server in the middle of a chunk and in the middle of a
commit, start it again, resume: the version publishes once, with the right content."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import func, select

from registry.unit_of_work import unit_of_work
from tests.registry.publishing_helpers import UploadApi, folder_files, make_token, make_user

WEIGHTS = "unet/diffusion_pytorch_model.safetensors"


@pytest.fixture
def files(tiny_model_dir: Path) -> dict[str, bytes]:
    return folder_files(tiny_model_dir)


def _fsck(settings) -> str:
    from registry.cli import main

    env = {
        "REGISTRY_DATABASE_URL": settings.database_url,
        "REGISTRY_STORAGE_URL": settings.storage_url,
        "REGISTRY_SECRET_KEY": settings.secret_key,
        "REGISTRY_INSTANCE_PATH": str(settings.instance_path),
    }
    result = CliRunner().invoke(main, ["fsck"], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def _published_once(registry, repo: str) -> None:
    from registry.models import AuditEvent, Model, Version

    with unit_of_work(registry.sessions) as db:
        model = db.scalar(select(Model).where(Model.name == repo.split("/")[1]))
        states = db.scalars(select(Version.state).where(Version.model_id == model.id)).all()
        assert states == ["published"]
        events = db.scalar(
            select(func.count()).where(
                AuditEvent.tag == "version:publish", AuditEvent.model_id == model.id
            )  # fmt: skip
        )
        assert events == 1


def test_sigkill_in_the_middle_of_a_chunk(registry, settings, start_server, files):
    token = make_token(registry, make_user(registry, "p@mgh.org", institution="mgh"))
    server = start_server()
    api = UploadApi(token, url=server.url)
    session = api.open("mgh/cxr", files, tier="open", tag="v1").body
    data = files[WEIGHTS]
    half = len(data) // 2
    assert api.put(session, WEIGHTS, data[:half], 0, len(data)).status == 200
    url = next(f["upload_url"] for f in session["files"] if f["path"] == WEIGHTS)

    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    head = (
        f"PUT {url} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Range: bytes {half}-{len(data) - 1}/{len(data)}\r\n"
        f"Content-Length: {len(data) - half}\r\n\r\n"
    )
    sock.sendall(head.encode() + data[half : half + 200_000])
    time.sleep(1.0)  # the worker is now blocked reading the rest of the body
    server.kill()
    sock.close()

    server = start_server()
    api = UploadApi(token, url=server.url)
    assert api.call("HEAD", url).headers["Upload-Offset"] == str(half)
    api.send_all(api.session(session["id"]).body, files, chunk=300_000)
    committed = api.commit(session["id"])
    assert committed.status == 200, committed.body
    got = requests.get(f"{server.url}/mgh/cxr/resolve/v1/{WEIGHTS}", timeout=30)
    assert got.content == data
    _published_once(registry, "mgh/cxr")
    assert list(registry.blobs.iter_staging()) == []
    assert "all intact" in _fsck(settings)


@contextmanager
def _hold_write_lock(settings):
    """Hold the lock a commit takes (the audit head row) from another connection."""
    if settings.database_url.startswith("sqlite"):
        conn = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"),
                               isolation_level=None)  # fmt: skip
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield lambda: time.sleep(3.0)  # no way to observe a waiting SQLite writer
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    import psycopg

    url = settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        conn.execute("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")

        def wait_for_blocked_commit() -> None:
            deadline = time.monotonic() + 30
            with psycopg.connect(url, autocommit=True) as probe:
                while time.monotonic() < deadline:
                    row = probe.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query ILIKE 'UPDATE audit_head%'"
                    ).fetchone()
                    if row and row[0]:
                        return
                    time.sleep(0.1)
            raise AssertionError("the commit never reached the lock")

        yield wait_for_blocked_commit
        conn.rollback()


def test_sigkill_in_the_middle_of_a_commit(registry, settings, start_server, files):
    token = make_token(registry, make_user(registry, "p@mgh.org", institution="mgh"))
    server = start_server()
    api = UploadApi(token, url=server.url)
    session = api.open("mgh/cxr", files, tier="open", tag="v1").body
    api.send_all(session, files)

    outcome: list[object] = []

    def commit() -> None:
        try:
            outcome.append(api.commit(session["id"]))
        except requests.RequestException as error:
            outcome.append(error)

    with _hold_write_lock(settings) as wait_until_blocked:
        thread = threading.Thread(target=commit)
        thread.start()
        wait_until_blocked()
        server.kill()
        thread.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], requests.ConnectionError)

    server = start_server()
    api = UploadApi(token, url=server.url)
    status = api.session(session["id"]).body
    assert status["state"] == "open" and status["version"]["state"] == "draft"
    assert requests.get(f"{server.url}/api/models/mgh/cxr", timeout=30).status_code == 404
    committed = api.commit(session["id"])
    assert committed.status == 200, committed.body
    for path, data in files.items():
        got = requests.get(f"{server.url}/mgh/cxr/resolve/v1/{path}", timeout=30)
        assert got.content == data, path
    _published_once(registry, "mgh/cxr")
    assert "all intact" in _fsck(settings)
