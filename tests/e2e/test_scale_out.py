"""Two registry server processes sharing one PostgreSQL and one S3 endpoint.

Push through one and pull through the other; revoke a grant on one and be refused by the
other at once; then mixed pulls and pushes on both for a bounded time with zero errors, no
corrupt or partial version, and bounded server memory.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from pathlib import Path

import pytest
import requests

from client import RegistryClient
from client.config import ClientSettings
from client.push import Uploader
from tests.conftest import make_settings

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

TRAFFIC_SECONDS = 20
MEMORY_LIMIT = 600 * 1024 * 1024  # per server process tree (master + 1 worker)


@pytest.fixture
def settings(database_url: str, tmp_path: Path, s3_storage_url: str):

    return make_settings(database_url, tmp_path, storage_url=s3_storage_url)


def make_client(url: str, token: str | None, home: Path) -> RegistryClient:
    settings = ClientSettings(url, token, home / "config", home / "cache")
    return RegistryClient(settings=settings, notify=lambda _msg: None)


def push(client: RegistryClient, folder: Path, repo: str, **options):
    uploader = Uploader(
        client.http, client.settings.cache_dir / "uploads", quiet=True, notify=lambda _m: None
    )
    return uploader.push(folder, repo, **options)


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def test_two_servers_share_state(start_server, people, registry, model_copy, tmp_path):
    one, two = start_server(), start_server()
    people.institution("usz")
    publisher = people.user("pub@usz.example", institution="usz", role="publisher")
    pub_token = people.token(publisher, "write")
    admin = people.user("admin@example.org", admin=True)
    admin_token = people.token(admin, "admin")

    # Push through one, pull through two.
    publisher_client = make_client(one.url, pub_token, tmp_path / "pub")
    pushed = push(publisher_client, model_copy, "usz/shared", tag="v1")
    assert pushed.state == "published", pushed
    pulled = make_client(two.url, None, tmp_path / "reader").pull("usz/shared@v1", quiet=True)
    assert tree_digest(pulled.path) == tree_digest(model_copy)

    # A contributor-review model: a grant revoked through one is refused by two at once.
    card = (
        (model_copy / "README.md")
        .read_text()
        .replace("access_tier: open", "access_tier: contributor-review")
        .replace("dua: none", "dua: physionet-credentialed-1.5.0")
    )
    (model_copy / "README.md").write_text(card)
    gated = push(
        make_client(one.url, pub_token, tmp_path / "pub"),
        model_copy,
        "usz/gated",
        tag="v1",
        tier="contributor-review",
    )
    requests.post(
        f"{one.url}/api/v1/models/usz/gated/versions/{gated.version['id']}/publish",
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=30,
    ).raise_for_status()
    researcher = people.researcher("res@uni.example")
    grant = people.grant(researcher, "usz/gated")
    token = people.token(researcher, "read")
    url = "/usz/gated/resolve/main/model_index.json"
    assert requests.get(two.url + url, headers={"Authorization": f"Bearer {token}"}).ok
    revoked = requests.post(
        f"{one.url}/api/v1/access-requests/{grant}/revoke",
        json={"reason": "project ended"},
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=30,
    )
    assert revoked.ok, revoked.text
    denied = requests.get(two.url + url, headers={"Authorization": f"Bearer {token}"})
    assert denied.status_code == 403
    assert denied.headers["X-Error-Code"] == "GatedRepo"


def test_concurrent_pulls_and_pushes_on_both_servers(start_server, people, model_copy, tmp_path):
    servers = [start_server(), start_server()]
    people.institution("usz")
    publisher = people.user("pub@usz.example", institution="usz", role="publisher")
    token = people.token(publisher, "write")
    push(make_client(servers[0].url, token, tmp_path / "seed"), model_copy, "usz/busy", tag="v0")

    errors: list[str] = []
    pushed_tags: list[str] = []
    pulls = [0]
    stop_at = time.monotonic() + TRAFFIC_SECONDS
    peak = [0, 0]

    def pusher(index: int) -> None:
        n = 0
        while time.monotonic() < stop_at:
            folder = tmp_path / f"push-{index}-{n}"
            shutil.copytree(model_copy, folder)
            (folder / "notes.txt").write_text(f"push {index}/{n}\n")  # new content each time
            tag = f"p{index}-{n}"
            try:
                client = make_client(servers[index].url, token, tmp_path / f"pusher{index}")
                result = push(client, folder, "usz/busy", tag=tag)
                assert result.state == "published"
                pushed_tags.append(tag)
            except Exception as error:  # any failure in a thread must fail the test
                errors.append(f"push {tag} via server {index}: {error!r}")
            shutil.rmtree(folder)
            n += 1

    def puller(index: int, worker: int) -> None:
        n = 0
        while time.monotonic() < stop_at:
            home = tmp_path / f"puller{worker}-{n}"
            try:
                result = make_client(servers[index].url, None, home).pull("usz/busy", quiet=True)
                assert (result.path / "model_index.json").exists()
                pulls[0] += 1
            except Exception as error:  # any failure in a thread must fail the test
                errors.append(f"pull via server {index}: {error!r}")
            shutil.rmtree(home, ignore_errors=True)
            n += 1

    def watch_memory() -> None:
        while time.monotonic() < stop_at:
            for i, server in enumerate(servers):
                peak[i] = max(peak[i], server.rss())
            time.sleep(0.5)

    threads = [threading.Thread(target=pusher, args=(i,)) for i in (0, 1)]
    threads += [
        threading.Thread(target=puller, args=(server, worker))
        for worker, server in enumerate((0, 1, 0, 1))
    ]
    threads.append(threading.Thread(target=watch_memory))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TRAFFIC_SECONDS + 240)
    assert not any(t.is_alive() for t in threads), "traffic did not stop"

    assert errors == []
    assert pushed_tags and pulls[0] > 0
    assert max(peak) < MEMORY_LIMIT, f"server memory peaked at {max(peak) / 2**20:.0f} MiB"
    # Every pushed version is complete and verifies, through either server.
    reader = make_client(servers[1].url, None, tmp_path / "final")
    for tag in pushed_tags:
        result = reader.pull(f"usz/busy@{tag}", quiet=True)
        notes = (result.path / "notes.txt").read_text()
        assert notes.startswith("push "), tag
        assert reader.verify(f"usz/busy@{tag}") == []
