"""Pushing to an S3 store: chunks become multipart parts as they arrive, so the last chunk's
finalize is one small part and ``CompleteMultipartUpload``, not a re-read and re-upload of
the file; a finalize killed half way is finished by the commit without the client re-sending
a byte, and ``gc`` leaves no multipart upload behind."""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from client.push import Uploader
from tests.client.conftest import BIG_FILE, write_safetensors
from tests.conftest import make_settings
from tests.registry.publishing_helpers import UploadApi, folder_files

MiB = 1024 * 1024
REPO = Path(__file__).resolve().parents[2]
# Before issue 20 the last PUT of this file re-read and re-uploaded all of it: 3.4-5.5 s on
# this 2-core machine for 144 MiB; now it sends one small part and completes the upload,
# about 1.8 s, most of it moto joining the parts in memory (real S3 completes in a time
# independent of the size). test_storage.py checks the bytes a commit moves, exactly.
BIG = 160 * MiB
TIMEOUT = 3.0  # the client's socket timeout: below the old finalize time, above the new one
CHUNK = 16 * MiB


@pytest.fixture
def settings(database_url: str, tmp_path: Path, s3_storage_url: str):
    return make_settings(database_url, tmp_path, storage_url=s3_storage_url)


@pytest.fixture
def publisher(people) -> str:
    return people.token(people.user("pub@mgh.org", institution="mgh", role="publisher"), "write")


def _bucket(s3_storage_url: str):
    import boto3

    parts = urlsplit(s3_storage_url)
    endpoint = parse_qs(parts.query)["endpoint"][0]
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1"), parts.netloc


def _multipart_uploads(s3_storage_url: str) -> list[dict]:
    s3, bucket = _bucket(s3_storage_url)
    return s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the size is the point
def test_a_large_chunked_push_succeeds_first_try_with_a_short_client_timeout(
    monkeypatch, counted_server, client_dirs, publisher, tiny_model_dir, tmp_path, make_client,
    s3_storage_url,
):  # fmt: skip
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    write_safetensors(folder / BIG_FILE, BIG)
    monkeypatch.setattr("client.push.CHUNK_SIZE", CHUNK)
    client = make_client(publisher)
    client.http.timeout = TIMEOUT

    uploader = Uploader(client.http, client_dirs["cache"] / "uploads", quiet=True, notify=print)
    result = uploader.push(folder, "mgh/big", tag="v1")

    assert result.state == "published"
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert result.bytes_sent == total  # nothing was sent twice
    big_puts = [p for m, p, _ in counted_server.traffic.requests if m == "PUT" and BIG_FILE in p]
    size = (folder / BIG_FILE).stat().st_size
    assert len(big_puts) == -(-size // CHUNK)  # one PUT per chunk: none timed out and re-sent
    assert _multipart_uploads(s3_storage_url) == []
    pulled = make_client().pull("mgh/big@v1", quiet=True)
    digest = hashlib.sha256()
    with open(pulled.path / BIG_FILE, "rb") as fh:
        while block := fh.read(8 * MiB):
            digest.update(block)
    assert digest.hexdigest() == hashlib.sha256((folder / BIG_FILE).read_bytes()).hexdigest()


KILLED_FINALIZE = """
import sys, time
from pathlib import Path
from registry.storage import open_blob_store
from registry.storage.s3_staging import S3Staging

store = open_blob_store(sys.argv[1], instance_path=Path("."))
real_complete = S3Staging._complete

def stopped_before_completing(self, state, final):
    client = self.store._s3
    def hang(**kwargs):
        print("blocked", flush=True)
        time.sleep(120)
    client.complete_multipart_upload = hang  # the last part is sent; the kill comes next
    return real_complete(self, state, final)

S3Staging._complete = stopped_before_completing
store.stage_commit(sys.argv[2], expected_sha256=sys.argv[3], expected_size=int(sys.argv[4]))
"""


def test_a_killed_finalize_is_resumed_without_resending_and_gc_leaves_no_multipart_upload(
    monkeypatch, registry, client, people, tiny_model_dir, tmp_path, s3_storage_url
):
    from registry.cli import main
    from registry.publishing import chunks, sessions

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    write_safetensors(folder / BIG_FILE, 12 * MiB)  # one 8 MiB part and a carry
    files = folder_files(folder)
    big = files[BIG_FILE]
    token = people.token(people.user("pub@mgh.org", institution="mgh", role="publisher"), "write")
    api = UploadApi(token, client=client)
    session = api.open("mgh/big", files, tier="open", tag="v1").body
    for path, data in files.items():
        if path != BIG_FILE and data:
            assert api.put(session, path, data).status == 200
    # The server is killed after the last chunk is recorded, in the middle of finalizing it.
    with monkeypatch.context() as patched:
        patched.setattr(chunks, "finalize_file", lambda *args, **kwargs: False)
        for start in range(0, len(big), 5 * MiB):
            piece = big[start : start + 5 * MiB]
            assert api.put(session, BIG_FILE, piece, start, len(big)).status == 200
    row = next(r for r in _rows(registry, session["id"]) if r.path == BIG_FILE)
    key = sessions.upload_key(row)
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_FINALIZE, s3_storage_url, key,
         hashlib.sha256(big).hexdigest(), str(len(big))],
        cwd=REPO, env=_env(), stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"blocked\n"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert len(_multipart_uploads(s3_storage_url)) == 1  # the killed finalize's, unfinished
    # A writer killed between starting a multipart upload and recording its chunk: nothing
    # names that upload; gc aborts it once it is older than the grace period.
    s3, bucket = _bucket(s3_storage_url)
    s3.create_multipart_upload(Bucket=bucket, Key=f"{registry.blobs.prefix}/sha256/00/00/stray")

    status = api.call("HEAD", next(f["upload_url"] for f in session["files"]
                                   if f["path"] == BIG_FILE))  # fmt: skip
    assert status.headers["Upload-Offset"] == str(len(big))  # nothing to re-send
    committed = api.commit(session["id"])
    assert committed.status == 200, committed.body
    assert committed.body["state"] == "published"
    with registry.blobs.open(hashlib.sha256(big).hexdigest()) as stored:
        assert stored.read() == big
    assert [u["Key"] for u in _multipart_uploads(s3_storage_url)] == [
        f"{registry.blobs.prefix}/sha256/00/00/stray"
    ]

    from click.testing import CliRunner

    env = _cli_env(registry)
    dry = CliRunner().invoke(main, ["gc", "--dry-run", "--grace-hours", "0"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "1 incomplete multipart upload(s)" in dry.output
    real = CliRunner().invoke(main, ["gc", "--grace-hours", "0"], env=env)
    assert real.exit_code == 0, real.output
    assert dry.output.replace("would remove", "removed") == real.output
    assert _multipart_uploads(s3_storage_url) == []
    assert list(registry.blobs.iter_staging()) == []


def _rows(registry, session_id: str):
    from sqlalchemy import select

    from registry.models import UploadFile

    with registry.sessions() as db:
        return list(db.scalars(select(UploadFile).where(UploadFile.session_id == session_id)))


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(REPO)}


def _cli_env(registry) -> dict[str, str]:
    settings = registry.settings
    return {
        "REGISTRY_DATABASE_URL": settings.database_url,
        "REGISTRY_STORAGE_URL": settings.storage_url,
        "REGISTRY_SECRET_KEY": settings.secret_key,
        "REGISTRY_INSTANCE_PATH": str(settings.instance_path),
    }
