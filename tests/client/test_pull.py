"""``pull``: signed manifest, parallel verified downloads, the cache layout, local dirs."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from client.errors import ServerUnavailable
from tests.client.conftest import run_cli


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def test_pull_verifies_and_caches_a_diffusers_folder(make_client, open_tiny, tiny_model_dir):
    client = make_client()
    result = client.pull("demo/tiny", quiet=True)

    assert result.commit == open_tiny.commit
    assert result.path == client.cache.version_dir("demo/tiny", open_tiny.commit)
    assert _files(result.path) == _files(tiny_model_dir)
    # Files are hard links to read-only, content-addressed blobs.
    for path in result.path.rglob("*"):
        if path.is_file():
            assert not path.stat().st_mode & stat.S_IWUSR
            assert path.stat().st_nlink >= 2
    record = client.cache.read_manifest_record("demo/tiny", open_tiny.commit)
    assert record["signature"] and record["key_id"] in client.trust.registry_keys()
    assert any("Pinned the signing key" in n for n in client.notices)
    assert not list((client.cache.root / "incomplete").glob("*.part"))


def test_second_pull_uses_the_cache_without_downloading(make_client, open_tiny, counted_server):
    client = make_client()
    client.pull("demo/tiny@v1", quiet=True)
    counted_server.traffic.reset()

    again = client.pull("demo/tiny", quiet=True)

    assert again.from_cache and again.bytes_fetched == 0
    assert not [r for r in counted_server.traffic.requests if "/resolve/" in r[1]]


def test_local_dir_gets_links_or_copies(make_client, open_tiny, tiny_model_dir, tmp_path):
    client = make_client()
    linked = client.pull("demo/tiny", local_dir=tmp_path / "linked", quiet=True)
    copied = client.pull("demo/tiny", local_dir=tmp_path / "copied", link=False, quiet=True)

    assert _files(linked.path) == _files(tiny_model_dir) == _files(copied.path)
    index = "model_index.json"
    assert (linked.path / index).stat().st_ino == client.cache.blob_path(
        _sha(tiny_model_dir / index)
    ).stat().st_ino
    assert (copied.path / index).stat().st_nlink == 1
    assert os.access(copied.path / index, os.W_OK)


def test_cli_pull_prints_only_the_path_when_quiet(counted_server, client_dirs, open_tiny):
    done = run_cli("--url", counted_server.url, "pull", "demo/tiny", "--quiet")

    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip())
    assert path.name == open_tiny.commit and (path / "model_index.json").is_file()
    assert json.loads((path / "model_index.json").read_text())["_class_name"]


def test_unknown_model_exits_5_with_the_registry_message(counted_server, client_dirs):
    done = run_cli("--url", counted_server.url, "pull", "demo/nothing-here", "-q")

    assert done.returncode == 5
    assert "not found" in done.stderr.lower()


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_unreachable_registry_falls_back_to_the_verified_cache(
    make_client, open_tiny, counted_server
):
    client = make_client()
    client.pull("demo/tiny@v1", quiet=True)
    counted_server.server.stop()

    again = client.pull("demo/tiny@v1", quiet=True)

    assert again.from_cache and again.commit == open_tiny.commit
    assert any("unreachable" in n for n in client.notices)
    with pytest.raises(ServerUnavailable):
        client.pull("demo/other", quiet=True)
