"""A pull killed mid-file resumes in a new process without re-downloading what it had."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

from sqlalchemy import select

from registry.unit_of_work import unit_of_work
from tests.client.conftest import BIG_FILE
from tests.fixtures.repos import publish_folder

MIB = 1024 * 1024


def _download_ranges(registry, path: str) -> list[list[int] | None]:
    from registry.models import AuditEvent

    with unit_of_work(registry.sessions) as db:
        events = db.scalars(
            select(AuditEvent).where(AuditEvent.tag == "version:download").order_by(AuditEvent.id)
        ).all()
        return [e.details.get("range") for e in events if e.details.get("path") == path]


def test_killed_pull_resumes_from_its_partial_file(
    registry, counted_server, client_dirs, big_model_dir, make_client
):
    published = publish_folder(registry, "demo/big", big_model_dir, tier="open")
    big = big_model_dir / BIG_FILE
    size = big.stat().st_size
    sha = hashlib.sha256(big.read_bytes()).hexdigest()
    partial = client_dirs["cache"] / "incomplete" / f"{sha}.part"
    counted_server.middleware.throttle = 16 * MIB  # ~4 s for the 64 MiB file

    process = subprocess.Popen(
        [sys.executable, "-m", "client", "--url", counted_server.url, "pull", "demo/big", "-q"],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not (partial.exists() and partial.stat().st_size >= 16 * MIB):
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "the partial file never grew"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    kept = partial.stat().st_size
    assert 16 * MIB <= kept < size
    assert counted_server.traffic.bytes_for(BIG_FILE) >= kept
    client = make_client()
    assert not client.cache.has_version("demo/big", published.commit)
    assert not client.cache.blob_path(sha).exists()

    counted_server.middleware.throttle = None
    counted_server.traffic.reset()
    result = client.pull("demo/big", quiet=True)

    # Only the missing tail of the big file crossed the wire, and nothing else.
    assert counted_server.traffic.bytes_for(BIG_FILE) == size - kept
    assert counted_server.traffic.total_bytes(f"/demo/big/resolve/{published.commit}/") == (
        size - kept
    )
    assert result.bytes_fetched == size - kept
    assert _download_ranges(registry, BIG_FILE)[-1] == [kept, size]
    assert hashlib.sha256((result.path / BIG_FILE).read_bytes()).hexdigest() == sha
    assert client.verify("demo/big") == []
    assert not partial.exists()


def test_two_concurrent_pulls_download_each_blob_once(
    registry, counted_server, client_dirs, big_model_dir, make_client
):
    published = publish_folder(registry, "demo/big", big_model_dir, tier="open")
    size = (big_model_dir / BIG_FILE).stat().st_size
    counted_server.middleware.throttle = 32 * MIB
    command = [
        sys.executable,
        "-m",
        "client",
        "--url",
        counted_server.url,
        "pull",
        "demo/big",
        "-q",
    ]
    processes = [
        subprocess.Popen(command, env=dict(os.environ), stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=180)[0].strip() for p in processes]

    assert [p.returncode for p in processes] == [0, 0]
    assert (
        outputs[0]
        == outputs[1]
        == str(make_client().cache.version_dir("demo/big", published.commit))
    )
    assert counted_server.traffic.bytes_for(BIG_FILE) == size
