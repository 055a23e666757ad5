"""The audit log is off the request path: with S3 hung (a loopback proxy that accepts and
never answers) and the registry-wide publishing lock held, audited downloads (answered from
the database and a locally signed URL) and logins on a second server process keep
completing; health names the failing backend within 2 s; and a commit makes no storage call
while it holds that lock."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from flask import g, has_request_context
from sqlalchemy import text
from sqlalchemy.exc import InvalidRequestError

from registry import identities
from registry.context import build_registry
from registry.storage.s3 import S3BlobStore
from registry.unit_of_work import unit_of_work
from tests.conftest import make_settings
from tests.fixtures.faults import CuttableProxy
from tests.fixtures.principals import PASSWORD, People
from tests.fixtures.repos import publish_folder
from tests.fixtures.s3 import DUMMY_AWS_ENV, s3_url
from tests.registry.audit_helpers import seal, sealed_events
from tests.registry.publishing_helpers import UploadApi, folder_files, make_token, make_user

FILE = "unet/diffusion_pytorch_model.safetensors"
HOLD_LOCK = "UPDATE audit_head SET seq = seq WHERE id = 1"  # what serialize_writes runs


@pytest.fixture
def hung_s3(s3_endpoint: str):
    proxy = CuttableProxy("127.0.0.1", int(s3_endpoint.rsplit(":", 1)[1]))
    yield proxy
    proxy.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_with_s3_hung_and_the_lock_held_downloads_and_logins_keep_completing(
    database_url, tmp_path: Path, hung_s3: CuttableProxy, start_server, tiny_model_dir
) -> None:
    storage = s3_url(f"http://127.0.0.1:{hung_s3.port}", f"hung-{uuid.uuid4().hex[:12]}")
    S3BlobStore.from_url(storage).ensure_bucket()
    registry = build_registry(make_settings(database_url, tmp_path, storage_url=storage))
    gated = publish_folder(registry, "demo/gated", tiny_model_dir, tier="credentialed")
    people = People(registry)
    reader = people.token(people.researcher("res@example.org"), "read")
    people.user("login@example.org")
    publisher = make_token(registry, make_user(registry, "pub@demo.org", institution="demo"))
    env = {"REGISTRY_STORAGE_URL": storage, **DUMMY_AWS_ENV}
    first, second = start_server(**env), start_server(**env)

    # A commit on the first process, its bytes uploaded while S3 still answered (credentialed:
    # demo/gated already holds these bytes, so they may not go out openly).
    uploads = UploadApi(publisher, url=first.url)
    files = folder_files(tiny_model_dir)
    opened = uploads.open("demo/next", files, tier="credentialed", tag="v1")
    assert opened.status == 201, opened.body
    uploads.send_all(opened.body, files)

    hung_s3.hang()
    committed: list[Any] = []
    commit = threading.Thread(
        target=lambda: committed.append(uploads.commit(opened.body["id"])), daemon=True
    )
    commit.start()
    url = f"{second.url}/{gated.repo_id}/resolve/main/{FILE}"
    dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
    downloads, logins = [], []
    with psycopg.connect(dsn) as holder:
        holder.execute(HOLD_LOCK)  # held for the whole window, as a slow publish would
        start = time.monotonic()
        health = requests.get(f"{second.url}/api/v1/health", timeout=10)
        health_seconds = time.monotonic() - start
        while time.monotonic() - start < 8:
            began = time.monotonic()
            answer = requests.get(
                url, headers={"Authorization": f"Bearer {reader}"}, allow_redirects=False,
                timeout=10,
            )  # fmt: skip
            downloads.append((answer.status_code, time.monotonic() - began))
            if len(downloads) % 4 == 0:
                began = time.monotonic()
                login = requests.post(
                    f"{second.url}/api/v1/login",
                    json={"email": "login@example.org", "password": PASSWORD},
                    timeout=10,
                )
                logins.append((login.status_code, time.monotonic() - began))
        holder.rollback()
    hung_s3.restore()

    assert health.status_code == 503 and health_seconds < 2.0, (health_seconds, health.text)
    assert health.json()["failing"] == ["storage"]
    assert health.json()["backends"]["database"]["ok"] is True
    assert "storage" in health.headers["X-Error-Message"]
    assert len(downloads) >= 8 and {status for status, _ in downloads} == {302}
    assert max(seconds for _, seconds in downloads) < 3.0, downloads
    assert logins and {status for status, _ in logins} == {200}
    assert max(seconds for _, seconds in logins) < 5.0, logins

    commit.join(timeout=120)
    assert committed and committed[0].status in (200, 503), committed
    seal(registry)
    recorded = [e for e in sealed_events(registry) if e.tag == "version:download"]
    assert len(recorded) == len(downloads)
    registry.engine.dispose()


class LockWatch:
    """The real blob store, noting each call made while the request's transaction holds
    the registry-wide lock (a row lock on ``audit_head``)."""

    def __init__(self, inner: Any, session: Any = None) -> None:
        self.inner = inner
        self.under_lock: list[str] = []
        self.calls: list[str] = []
        self.session = session or _request_session  # the transaction to watch

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            db = self.session()
            if db is not None and _holds_lock(db):
                self.under_lock.append(name)
            return attr(*args, **kwargs)

        return call


def _request_session() -> Any:
    return g.get("db") if has_request_context() else None


def _holds_lock(db: Any) -> bool:
    try:
        db.connection()
    except InvalidRequestError:  # just committed (an after-commit hook): no transaction
        return False
    return bool(
        db.execute(
            text(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE c.relname = 'audit_head' AND l.pid = pg_backend_pid() "
                "AND l.mode = 'RowExclusiveLock'"
            )
        ).scalar()
    )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("review", [False, True])
def test_a_commit_makes_no_storage_call_while_holding_the_lock(
    database_url, tmp_path: Path, s3_storage_url: str, tiny_model_dir, review: bool
) -> None:
    from registry.app import create_app

    app = create_app(settings=make_settings(database_url, tmp_path, storage_url=s3_storage_url))
    registry = app.extensions["registry"]
    watch = LockWatch(registry.blobs)
    # The request's store, and the one that marks version ids and tags at each commit.
    registry.blobs = registry.identities.blobs = watch
    token = make_token(registry, make_user(registry, "pub@demo.org", institution="demo"))
    uploads = UploadApi(token, client=app.test_client())
    reply = uploads.publish(
        "demo/watched",
        folder_files(tiny_model_dir),
        tier="credentialed" if review else "open",
        tag="v1",
    )
    assert reply.status == 200, reply.body
    assert reply.body["state"] == ("in-review" if review else "published")
    if review:  # a reviewer publishes it: the other path that takes the lock and tags
        admin = make_user(registry, "admin@registry.org", admin=True)
        reviewer = UploadApi(make_token(registry, admin, scope="admin"), client=app.test_client())
        version = reply.body["version"]["id"]
        published = reviewer.call("POST", f"/api/v1/models/demo/watched/versions/{version}/publish")
        assert published.status == 200, published.body
    assert watch.under_lock == []
    # The tag is marked in the blob store all the same, once the lock is let go.
    assert "put_meta" in watch.calls
    assert registry.identities.blobs.inner.get_meta(identities.tag_mark("demo/watched", "v1"))
    registry.engine.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_gc_makes_no_storage_call_while_holding_the_lock(registry, client, tiny_model_dir) -> None:
    """gc decides under the lock (one consistent view of what is referenced) and deletes,
    discards and lists in storage outside it: a hung S3 cannot hold every publisher up."""
    from registry.publishing.gc import collect_garbage

    uploads = UploadApi(
        make_token(registry, make_user(registry, "pub@demo.org", institution="demo")),
        client=client,
    )
    abandoned = {**folder_files(tiny_model_dir), "notes.txt": b"never committed"}
    session = uploads.open("demo/abandoned", abandoned, tier="open").body
    uploads.send_all(session, abandoned)
    partial = uploads.open("demo/partial", {"half.txt": b"x" * 1000}, tier="open").body
    assert uploads.put(partial, "half.txt", b"x" * 400, 0, 1000).status == 200
    later = registry.now() + dt.timedelta(hours=registry.settings.upload_session_hours + 2)

    with unit_of_work(registry.sessions) as db:
        watch = LockWatch(registry.blobs, session=lambda: db)
        report = collect_garbage(db, watch, now=later, grace=dt.timedelta(hours=1))
    assert len(report.expired_sessions) == 2 and len(report.staging_removed) == 1
    assert len(report.blobs_removed) == len(abandoned)
    assert "delete" in watch.calls and watch.under_lock == []
    assert list(registry.blobs.iter_blobs()) == [] and list(registry.blobs.iter_staging()) == []
    for opened in (session, partial):
        assert uploads.session(opened["id"]).body["state"] == "expired"


@pytest.fixture
def hung_redis():
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        if os.environ.get("CI"):
            pytest.fail("no Redis on 127.0.0.1:6379")
        pytest.skip("no Redis on 127.0.0.1:6379")
    proxy = CuttableProxy("127.0.0.1", 6379)
    yield proxy
    proxy.close()


def _within(seconds: float, call: Any) -> tuple[Any, float]:
    """``call()``'s answer and how long it took; fails (leaving the thread) past ``seconds``."""
    answers: list[Any] = []
    start = time.monotonic()
    worker = threading.Thread(target=lambda: answers.append(call()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert answers, f"no answer within {seconds:g} s"
    return answers[0], time.monotonic() - start


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_with_the_rate_limit_store_hung_logins_answer_and_health_names_it(
    settings, people, hung_redis: CuttableProxy
) -> None:
    """Redis is a backend too: a hung one costs a login a bounded wait and a clear 503 (the
    limits cannot be checked), never a request stuck forever, and health names it."""
    from registry.app import create_app

    url = f"redis://127.0.0.1:{hung_redis.port}/11"
    limited = dataclasses.replace(settings, ratelimit_enabled=True, ratelimit_storage_url=url)
    app = create_app(settings=limited)
    client = app.test_client()  # without cookies: a signed-in session would want CSRF
    people.user("login@example.org")
    body = {"email": "login@example.org", "password": PASSWORD}

    def login() -> Any:
        return app.test_client().post("/api/v1/login", json=body)

    assert login().status_code == 200  # Redis answering

    hung_redis.hang()
    health, seconds = _within(10, lambda: client.get("/api/v1/health"))
    assert seconds < 2.0 and health.status_code == 503, (seconds, health.json)
    assert health.json["failing"] == ["ratelimit"]
    assert "ratelimit" in health.headers["X-Error-Message"]
    refused, seconds = _within(15, login)
    assert seconds < 5.0, seconds
    assert refused.status_code == 503 and "rate limits" in refused.headers["X-Error-Message"]

    hung_redis.restore()
    assert login().status_code == 200
    assert client.get("/api/v1/health").json["failing"] == []
    app.extensions["registry"].engine.dispose()
