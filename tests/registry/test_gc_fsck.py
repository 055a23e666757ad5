"""``gc`` removes only unreferenced blobs past the grace period; ``fsck`` finds corruption."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from registry.unit_of_work import unit_of_work
from tests.registry.publishing_helpers import (
    UploadApi,
    folder_files,
    make_token,
    make_user,
    sha256,
)

WEIGHTS = "unet/diffusion_pytorch_model.safetensors"


@pytest.fixture
def files(tiny_model_dir: Path) -> dict[str, bytes]:
    return folder_files(tiny_model_dir)


@pytest.fixture
def api(registry, client) -> UploadApi:
    return UploadApi(make_token(registry, make_user(registry, "p@mgh.org", institution="mgh")),
                     client=client)  # fmt: skip


@pytest.fixture
def cli_env(settings) -> dict[str, str]:
    return {
        "REGISTRY_DATABASE_URL": settings.database_url,
        "REGISTRY_STORAGE_URL": settings.storage_url,
        "REGISTRY_SECRET_KEY": settings.secret_key,
        "REGISTRY_INSTANCE_PATH": str(settings.instance_path),
    }


def _stored(registry) -> set[str]:
    return {sha for sha, _, _ in registry.blobs.iter_blobs()}


def test_gc_removes_only_unreferenced_blobs_past_the_grace(api, registry, client, files):
    from registry.publishing.gc import collect_garbage

    assert api.publish("mgh/cxr", files, tier="open", tag="v1").status == 200
    refused = api.publish(
        "mgh/cxr", {**files, "junk.txt": b"refused junk", "x.safetensors": b"not weights"}
    )
    assert refused.status == 422
    pending = {**files, "pending.txt": b"still uploading"}
    session = api.open("mgh/cxr", pending).body
    api.send_all(session, pending)
    junk, kept = sha256(b"refused junk"), sha256(b"still uploading")
    bad = sha256(b"not weights")
    assert {junk, kept, bad} <= _stored(registry)

    def gc(hours_later: float, dry_run: bool = False):
        now = dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours_later)
        with unit_of_work(registry.sessions) as db:
            return collect_garbage(
                db, registry.blobs, now=now, grace=dt.timedelta(hours=1), dry_run=dry_run
            )

    assert gc(0).blobs_removed == []  # everything is younger than the grace period
    dry = gc(2, dry_run=True)
    assert {sha for sha, _ in dry.blobs_removed} == {junk, bad} and junk in _stored(registry)
    report = gc(2)
    assert {sha for sha, _ in report.blobs_removed} == {junk, bad}
    assert _stored(registry) == {sha256(b) for b in files.values()} | {kept}
    assert client.get(f"/mgh/cxr/resolve/v1/{WEIGHTS}").data == files[WEIGHTS]
    assert api.commit(session["id"]).status == 200


def test_fsck_finds_corrupt_and_missing_blobs(api, registry, cli_env, files):
    from registry.cli import main

    assert api.publish("mgh/cxr", files, tier="open", tag="v1").status == 200
    clean = CliRunner().invoke(main, ["fsck"], env=cli_env)
    assert clean.exit_code == 0 and "all intact" in clean.output, clean.output

    corrupt = registry.blobs.local_path(sha256(files[WEIGHTS]))
    os.chmod(corrupt, 0o644)
    data = bytearray(corrupt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    registry.blobs.delete(sha256(files["unet/config.json"]))

    broken = CliRunner().invoke(main, ["fsck"], env=cli_env)
    assert broken.exit_code == 1
    assert f"CORRUPT {sha256(files[WEIGHTS])}" in broken.output
    assert f"MISSING {sha256(files['unet/config.json'])}" in broken.output
    assert "1 corrupt, 1 missing" in broken.output


def test_gc_command_reports_what_it_removed(api, registry, cli_env, files):
    from registry.cli import main

    api.publish("mgh/cxr", {**files, "bad.safetensors": b"not weights"}, tier="open")
    result = CliRunner().invoke(main, ["gc", "--grace-hours", "0"], env=cli_env)
    assert result.exit_code == 0, result.output
    assert f"removed {len(files) + 1} blob(s)" in result.output
    assert _stored(registry) == set()


def test_gc_keeps_training_certificates(registry, people):
    """Certificates live in the blob store with no version referring to them."""
    import io

    from registry.models import Training
    from registry.publishing.gc import collect_garbage

    user = people.user("trainee@example.org")
    info = registry.blobs.put_stream(io.BytesIO(b"%PDF-1.4 certificate"))
    with unit_of_work(registry.sessions) as db:
        db.add(
            Training(
                user_id=user,
                kind="citi-dsor",
                certificate_sha256=info.sha256,
                certificate_filename="citi.pdf",
                certificate_content_type="application/pdf",
                created_at=registry.now(),
            )
        )
        db.commit()
    with unit_of_work(registry.sessions) as db:
        collect_garbage(
            db, registry.blobs, now=registry.now() + dt.timedelta(days=365), grace=dt.timedelta(0)
        )
    assert registry.blobs.exists(info.sha256)


def test_gc_dry_run_reports_exactly_what_the_real_run_removes(api, registry, files):
    """An abandoned session's bytes: the dry run used to count them as still referenced
    (its session was open until the real run expired it) and report 0 blobs."""
    from registry.publishing.gc import collect_garbage

    abandoned = {**files, "notes.txt": b"never committed"}
    session = api.open("mgh/cxr", abandoned, tier="open").body
    api.send_all(session, {p: b for p, b in abandoned.items()}, chunk=0)
    partial = {"half.txt": b"x" * 1000}
    other = api.open("mgh/other", partial, tier="open").body
    assert api.put(other, "half.txt", partial["half.txt"][:400], 0, 1000).status == 200
    later = registry.now() + dt.timedelta(hours=registry.settings.upload_session_hours + 2)

    def gc(dry_run: bool):
        with unit_of_work(registry.sessions) as db:
            return collect_garbage(
                db, registry.blobs, now=later, grace=dt.timedelta(hours=1), dry_run=dry_run
            )

    dry = gc(dry_run=True)
    assert len(dry.blobs_removed) == len(abandoned) and len(dry.staging_removed) == 1
    assert _stored(registry) == {sha256(b) for b in abandoned.values()}
    real = gc(dry_run=False)
    assert dataclasses.asdict(real) == dataclasses.asdict(dry)
    assert _stored(registry) == set() and list(registry.blobs.iter_staging()) == []


def test_a_push_between_gcs_decision_and_its_deletes_never_publishes_missing_bytes(
    api, registry, client, files
):
    """gc decides under the lock, then deletes bytes without it: a push of the same bytes in
    between (skipping their upload, as the institution held them) must not end as a version
    whose file is gone."""
    from registry.publishing.gc import collect_garbage

    assert api.publish("mgh/cxr", files, tier="open", tag="v1").status == 200
    again = {"notes.txt": b"refused, then pushed again", "x.safetensors": b"not weights"}
    assert api.publish("mgh/cxr", {**files, **again}).status == 422
    repushed = {**files, "notes.txt": again["notes.txt"]}
    replies, sessions = [], []

    class PushDuringDelete:
        """The blob store, with a push landing just before gc's first delete."""

        def __init__(self, blobs) -> None:
            self._blobs = blobs

        def __getattr__(self, name):
            return getattr(self._blobs, name)

        def delete(self, sha: str) -> None:
            if not replies:
                opened = api.open("mgh/cxr", repushed, tag="v2")
                assert opened.status == 201, opened.body
                api.send_all(opened.body, repushed)
                sessions.append(opened.body["id"])
                replies.append(api.commit(opened.body["id"]))
            self._blobs.delete(sha)

    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    with unit_of_work(registry.sessions) as db:
        collect_garbage(
            db, PushDuringDelete(registry.blobs), now=later, grace=dt.timedelta(hours=1),
            dry_run=False,
        )  # fmt: skip
    assert replies, "gc deleted nothing: the race was not exercised"
    # The commit found the file's record gone under the lock: it asks for the bytes again.
    refused, session_id = replies[0], sessions[0]
    assert refused.status == 409 and refused.body["code"] == "UploadIncomplete", refused.body
    assert [f["path"] for f in refused.body["incomplete"]] == ["notes.txt"]
    session = api.session(session_id).body
    api.send_all(session, repushed)
    assert api.commit(session_id).status == 200
    served = client.get("/mgh/cxr/resolve/v2/notes.txt")
    assert served.status_code == 200 and served.data == again["notes.txt"]
