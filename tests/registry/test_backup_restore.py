"""The README's backup and restore steps, followed literally: database first, then the blob
store, the same secret key; versions made between the two copies are lost with the database,
so the restored registry refuses to start until told ``--accept-restore``, and then never
issues their ids or tags again."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from registry.app import create_app
from registry.identities import RestoreRefused
from tests.conftest import make_settings
from tests.registry.publishing_helpers import UploadApi, folder_files, make_token, make_user


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def back_up_database(url: str, dump: Path) -> None:
    """README step 2: ``sqlite3 registry.db ".backup FILE"`` or ``pg_dump -Fc``."""
    if url.startswith("sqlite"):
        source = url.removeprefix("sqlite:///")
        subprocess.run(["sqlite3", source, f".backup {dump}"], check=True, timeout=60)
    else:
        subprocess.run(["pg_dump", "-Fc", "-f", str(dump), _libpq(url)], check=True, timeout=60)


def restore_database(url: str, dump: Path) -> None:
    """README restore step 2: ``sqlite3 registry.db ".restore FILE"`` or ``pg_restore``."""
    if url.startswith("sqlite"):
        target = url.removeprefix("sqlite:///")
        subprocess.run(["sqlite3", target, f".restore {dump}"], check=True, timeout=60)
    else:
        subprocess.run(
            ["pg_restore", "--clean", "--if-exists", "--no-owner", "-d", _libpq(url), str(dump)],
            check=True,
            timeout=60,
        )


def _publish(app, token: str, files: dict[str, bytes], tag: str):
    api = UploadApi(token, client=app.test_client())
    return api.publish("usz/alpha", files, tier="open", tag=tag)


def test_a_restore_of_an_older_database_is_refused_then_accepted_without_reusing_ids_or_tags(
    settings, tmp_path: Path, tiny_model_dir: Path
):
    app = create_app(settings=settings)
    registry = app.extensions["registry"]
    token = make_token(registry, make_user(registry, "p@usz.ch", institution="usz"))
    files = folder_files(tiny_model_dir)
    v1 = _publish(app, token, files, "v1")
    assert v1.status == 200, v1.body

    backup = tmp_path / "backup"
    backup.mkdir()
    # 1. gc is off during the backup (nothing runs it here); 2. the database first ...
    back_up_database(settings.database_url, backup / "registry.dump")
    # ... while users keep publishing: this version exists only in the blob store's copy.
    lost = _publish(app, token, {**files, "notes.txt": b"made during the backup"}, "v2")
    assert lost.status == 200, lost.body
    lost_id = lost.body["version"]["id"]
    # 3. then the blob store.
    shutil.copytree(Path(settings.storage_url.removeprefix("file://")), backup / "blobs")
    registry.engine.dispose()

    # The disaster: the instance is gone. Restore the blobs, then the database, and start
    # with the same REGISTRY_SECRET_KEY.
    shutil.rmtree(settings.instance_path)
    blobs = Path(settings.storage_url.removeprefix("file://"))
    shutil.copytree(backup / "blobs", blobs)
    restore_database(settings.database_url, backup / "registry.dump")

    with pytest.raises(RestoreRefused, match=f"version ids up to {lost_id} were issued"):
        create_app(settings=settings)
    from registry.cli import main

    env = {
        "REGISTRY_DATABASE_URL": settings.database_url,
        "REGISTRY_STORAGE_URL": settings.storage_url,
        "REGISTRY_SECRET_KEY": settings.secret_key,
        "REGISTRY_INSTANCE_PATH": str(settings.instance_path),
    }
    refused = CliRunner().invoke(main, ["serve", "--port", "1"], env=env)
    assert refused.exit_code != 0 and "--accept-restore" in refused.output, refused.output

    accepted_settings = make_settings(
        settings.database_url, tmp_path, storage_url=settings.storage_url, accept_restore=True
    )
    app = create_app(settings=accepted_settings)
    again = _publish(app, token, {**files, "notes.txt": b"other bytes"}, "v2")
    assert again.status == 409 and "was issued before a database restore" in str(again.body)
    fresh = _publish(app, token, {**files, "notes.txt": b"other bytes"}, "v3")
    assert fresh.status == 200, fresh.body
    assert fresh.body["version"]["id"] > lost_id  # no id of the lost version is issued again
    app.extensions["registry"].engine.dispose()

    # Once accepted, later starts need no flag; v1 is intact.
    app = create_app(settings=settings)
    client = app.test_client()
    assert client.get("/usz/alpha/resolve/v1/model_index.json").data == files["model_index.json"]
    fsck = CliRunner().invoke(main, ["fsck"], env=env)
    assert fsck.exit_code == 0, fsck.output
    app.extensions["registry"].engine.dispose()


def test_a_mark_lost_after_its_commit_is_written_at_the_next_start(settings, tiny_model_dir: Path):
    """A publish marks its tag just after its commit (no storage call under the registry-wide
    lock); if a crash or a storage outage lost that write, the next start writes it, so a
    later restore still retires the tag."""
    from registry import identities

    app = create_app(settings=settings)
    registry = app.extensions["registry"]
    token = make_token(registry, make_user(registry, "p@usz.ch", institution="usz"))
    assert _publish(app, token, folder_files(tiny_model_dir), "v1").status == 200
    name = identities.tag_mark("usz/alpha", "v1")
    stored = Path(settings.storage_url.removeprefix("file://")) / "meta" / name
    assert stored.is_file()
    stored.unlink()  # as if the process died between its commit and the write
    registry.engine.dispose()

    app = create_app(settings=settings)
    assert stored.is_file() and b'"tag": "v1"' in stored.read_bytes()
    app.extensions["registry"].engine.dispose()
