"""Two server processes appending audit events under load give one log: every event gets
exactly one place (1..N, no gap, no duplicate), each checkpoint is sealed by one process at
a time (the advisory lock), and the whole log verifies."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

import psutil
import pytest
import requests
from sqlalchemy import func, select

from registry.audit.verify import verify_log
from registry.models import AuditCheckpoint, AuditEvent
from registry.unit_of_work import unit_of_work
from tests.fixtures.repos import publish_folder

LOAD_SECONDS = float(os.environ.get("REGISTRY_TEST_AUDIT_LOAD_SECONDS", "20"))
CONNECTIONS = 32


def _pending(registry) -> int:
    with unit_of_work(registry.sessions) as db:
        query = select(func.count()).select_from(AuditEvent).where(AuditEvent.seq.is_(None))
        return db.scalar(query)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_processes_under_load_give_one_gapless_log(registry, start_server, tiny_model_dir):
    published = publish_folder(registry, "demo/load", tiny_model_dir, tier="open")
    servers = [start_server(workers=1), start_server(workers=1)]
    worker_pids = {
        f"{os.uname().nodename}/{child.pid}"
        for server in servers
        for child in psutil.Process(server.process.pid).children(recursive=True)
    }
    done: Counter[str] = Counter()
    lock = threading.Lock()
    stop = time.monotonic() + LOAD_SECONDS

    def load(index: int) -> None:
        http = requests.Session()
        server = servers[index % 2]
        url = f"{server.url}/demo/load/resolve/{published.commit}/model_index.json"
        while time.monotonic() < stop:
            try:
                ok = http.get(url, timeout=30).status_code == 200
            except requests.RequestException:
                ok = False
            with lock:
                done["ok" if ok else "failed"] += 1

    threads = [threading.Thread(target=load, args=(i,)) for i in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert done["failed"] == 0 and done["ok"] > 100, done

    deadline = time.monotonic() + 30
    while _pending(registry) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _pending(registry) == 0, "the background sealers did not catch up within 30 s"

    with unit_of_work(registry.sessions) as db:
        seqs = list(db.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)))
        downloads = db.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.tag == "version:download")
        )
        checkpoints = db.execute(
            select(
                AuditCheckpoint.size, AuditCheckpoint.leaves, AuditCheckpoint.sealed_by
            ).order_by(AuditCheckpoint.size)
        ).all()
        report = verify_log(db, registry.settings)
    assert seqs == list(range(1, len(seqs) + 1))  # no gap, no duplicate
    assert downloads == done["ok"]
    covered = 0
    for size, leaves, sealed_by in checkpoints:
        assert len(leaves) // 64 == size - covered  # each seal took up where the last ended
        assert sealed_by in worker_pids  # by one of the two processes' workers
        covered = size
    assert covered == len(seqs) and len(checkpoints) > 1
    assert not report.problems and report.sealed == len(seqs)
    for server in servers:
        assert "audit-seal failed" not in server.log.read_text()


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_download_on_an_idle_server_is_sealed_within_seconds(
    registry, start_server, tiny_model_dir
) -> None:
    """``serve`` seals in the background (twice a second): a download's event is in a signed,
    public checkpoint within a second or two, with nobody running ``audit seal``."""
    published = publish_folder(registry, "demo/quick", tiny_model_dir, tier="open")
    server = start_server()
    url = f"{server.url}/demo/quick/resolve/{published.commit}/model_index.json"
    assert requests.get(url, timeout=30).status_code == 200
    downloaded = time.monotonic()
    while _pending(registry) and time.monotonic() - downloaded < 20:
        time.sleep(0.05)
    waited = time.monotonic() - downloaded
    assert _pending(registry) == 0 and waited < 5.0, waited  # typically well under a second
    with unit_of_work(registry.sessions) as db:
        total = db.scalar(select(func.count()).select_from(AuditEvent))
    latest = requests.get(f"{server.url}/api/v1/audit/checkpoints/latest", timeout=10)
    assert latest.status_code == 200 and latest.json()["size"] == total
