"""``verify``: re-hash a cached version, re-check signatures offline, evict damage."""

from __future__ import annotations

import os

from tests.client.conftest import run_cli

UNET = "unet/diffusion_pytorch_model.safetensors"


def test_verify_passes_on_an_intact_cache(counted_server, client_dirs, open_tiny, make_client):
    make_client().pull("demo/tiny", quiet=True)
    counted_server.traffic.reset()

    done = run_cli("--url", counted_server.url, "verify", "demo/tiny")

    assert done.returncode == 0, done.stderr
    assert "verified" in done.stdout
    # Online, only the version's manifest is asked for (was it withdrawn?); no file moves.
    paths = [r[1] for r in counted_server.traffic.requests]
    assert paths and all("/manifest" in path for path in paths), paths


def test_verify_refuses_a_cached_version_the_registry_withdrew(
    registry, counted_server, client_dirs, open_tiny, make_client
):
    from sqlalchemy import select

    from registry.models import Version
    from registry.publishing.withdrawal import withdraw_version

    folder = make_client().pull("demo/tiny", quiet=True).path
    with registry.sessions() as db, db.begin():
        version = db.scalar(select(Version).where(Version.commit == open_tiny.commit))
        withdraw_version(db, version, "re-identifiable faces", actor=None, now=registry.now())

    done = run_cli("--url", counted_server.url, "verify", "demo/tiny")

    assert done.returncode == 6, done.stderr
    assert "re-identifiable faces" in done.stderr
    assert folder.exists()  # withdrawal is not damage: the user decides what to delete


def test_verify_finds_damage_and_the_next_pull_repairs_it(
    counted_server, client_dirs, open_tiny, make_client
):
    client = make_client()
    folder = client.pull("demo/tiny", quiet=True).path
    damaged = folder / UNET
    size = damaged.stat().st_size
    os.chmod(damaged, 0o644)
    with damaged.open("r+b") as handle:
        handle.seek(100)
        handle.write(b"\0\0\0\0")
    (folder / "notes.txt").write_text("not part of the model")

    done = run_cli("--url", counted_server.url, "verify", "demo/tiny")

    assert done.returncode == 7
    assert UNET in done.stderr and "notes.txt" in done.stderr
    assert not folder.exists()
    counted_server.traffic.reset()
    repaired = client.pull("demo/tiny", quiet=True)
    assert repaired.bytes_fetched == size
    fetched = [r[1] for r in counted_server.traffic.requests if "/resolve/" in r[1]]
    assert [path.endswith(UNET) for path in fetched] == [True]
    assert client.verify("demo/tiny") == []


def test_verify_of_an_uncached_model_exits_5(counted_server, client_dirs):
    done = run_cli("--url", counted_server.url, "verify", "demo/tiny")
    assert done.returncode == 5 and "pull it first" in done.stderr
