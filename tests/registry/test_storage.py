"""One conformance suite for every ``BlobStore``, plus what only one backend can show."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import requests

from registry.storage import (
    BlobIntegrityError,
    BlobNotFoundError,
    BlobStore,
    LocalBlobStore,
    StagingOffsetError,
    StorageUnavailableError,
    open_blob_store,
)
from registry.storage.keys import blob_key
from registry.storage.s3 import S3BlobStore
from tests.fixtures.faults import TinyDisk
from tests.fixtures.s3 import free_port, s3_url

MiB = 1024 * 1024
REPO = Path(__file__).resolve().parents[2]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class GeneratedStream(io.RawIOBase):
    """A reader over blocks made on demand by a generator; the whole is never in memory.

    With ``fail_after``, raises ``ConnectionResetError`` once that many bytes were read, like a
    client whose connection drops; with ``block_after``, announces it on stdout and hangs.
    """

    def __init__(
        self, blocks: Iterator[bytes], fail_after: int | None = None, block_after: int | None = None
    ) -> None:
        super().__init__()
        self._blocks = blocks
        self._pending = memoryview(b"")
        self._read = 0
        self._fail_after = fail_after
        self._block_after = block_after

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._fail_after is not None and self._read >= self._fail_after:
            raise ConnectionResetError("client went away")
        if self._block_after is not None and self._read >= self._block_after:
            print("blocked", flush=True)
            time.sleep(600)
        while not self._pending:
            block = next(self._blocks, None)
            if block is None:
                return 0
            self._pending = memoryview(block)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self._read += n
        return n


def pattern(total: int, block: int = MiB) -> Iterator[bytes]:
    """``total`` deterministic bytes in ``block``-sized pieces, each made when asked for."""
    for index, start in enumerate(range(0, total, block)):
        yield (index.to_bytes(8, "big") * (block // 8 + 1))[: min(block, total - start)]


def pattern_sha(total: int) -> str:
    digest = hashlib.sha256()
    for block in pattern(total):
        digest.update(block)
    return digest.hexdigest()


class LocalBackend:
    """A local store's folder, seen from outside the store."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = root.as_uri()

    def open(self) -> BlobStore:
        return open_blob_store(self.url, instance_path=self.root.parent)

    def listing(self) -> set[str]:
        """Every file under the root (temp files and staging included)."""
        if not self.root.exists():
            return set()
        return {str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file()}


class S3Backend:
    """An S3 store's bucket, seen from outside the store."""

    kind = "s3"

    def __init__(self, url: str) -> None:
        self.url = url
        store = S3BlobStore.from_url(url)
        self.bucket = store.bucket
        self.client = boto3.client("s3", endpoint_url=store.endpoint_url, region_name="us-east-1")

    def open(self) -> BlobStore:
        return open_blob_store(self.url, instance_path=Path("/nonexistent"))

    def listing(self) -> set[str]:
        """Every object key in the bucket, and every unfinished multipart upload."""
        keys = set()
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            keys |= {obj["Key"] for obj in page.get("Contents", [])}
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return keys | {f"multipart-upload:{u['Key']}" for u in uploads}


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> LocalBackend | S3Backend:
    if request.param == "local":
        return LocalBackend(tmp_path / "blobs")
    return S3Backend(request.getfixturevalue("s3_storage_url"))


@pytest.fixture
def store(backend: LocalBackend | S3Backend) -> BlobStore:
    return backend.open()


# Blobs

# 0 and 10 bytes take the single-PUT path on S3; 11 MiB + 5 spans two multipart parts.
SIZES = [0, 10, 11 * MiB + 5]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("declared", [False, True], ids=["undeclared", "declared"])
def test_put_and_read_back(store: BlobStore, backend, size: int, declared: bool) -> None:
    data = os.urandom(size)
    expected = {"expected_sha256": sha(data), "expected_size": size} if declared else {}
    info = store.put_stream(io.BytesIO(data), **expected)
    assert (info.sha256, info.size, info.created) == (sha(data), size, True)
    assert store.exists(info.sha256)
    assert store.size(info.sha256) == size
    with store.open(info.sha256) as fh:
        assert fh.read() == data
    blobs = list(backend.open().iter_blobs())
    assert [(s, n) for s, n, _ in blobs] == [(info.sha256, size)]
    modified = blobs[0][2]
    assert modified.tzinfo is not None
    assert abs(modified - datetime.now(UTC)) < timedelta(minutes=5)
    key = f"sha256/{info.sha256[:2]}/{info.sha256[2:4]}/{info.sha256}"
    assert {k.removeprefix("blobs/") for k in backend.listing()} == {key}


@pytest.mark.parametrize("declared", [False, True], ids=["undeclared", "declared"])
def test_identical_content_is_stored_once(store: BlobStore, backend, declared: bool) -> None:
    data = os.urandom(9 * MiB)
    first = store.put_stream(io.BytesIO(data))
    before = backend.listing()
    expected = {"expected_sha256": sha(data), "expected_size": len(data)} if declared else {}
    again = backend.open().put_stream(io.BytesIO(data), **expected)
    assert again.created is False
    assert (again.sha256, again.size) == (first.sha256, first.size)
    assert backend.listing() == before
    with store.open(first.sha256) as fh:
        assert fh.read() == data


def test_dedup_still_verifies_the_stream(store: BlobStore, backend) -> None:
    data = b"weights" * 1000
    store.put_stream(io.BytesIO(data))
    before = backend.listing()
    with pytest.raises(BlobIntegrityError, match="size mismatch"):
        store.put_stream(
            io.BytesIO(data + b"!"), expected_sha256=sha(data), expected_size=len(data)
        )
    assert backend.listing() == before


def test_ranged_open(store: BlobStore) -> None:
    data = os.urandom(3 * MiB + 7)
    digest = store.put_stream(io.BytesIO(data)).sha256
    for start, end in [(0, 10), (5, 3 * MiB), (MiB, None), (len(data) - 1, len(data)), (7, 7)]:
        with store.open(digest, start, end) as fh:
            assert fh.read() == data[start:end], (start, end)
    with store.open(digest, 100, len(data) + 1000) as fh:  # past EOF reads to EOF, like HTTP
        assert fh.read() == data[100:]
    with store.open(digest, len(data)) as fh:
        assert fh.read() == b""
    with pytest.raises(ValueError, match="past the end"):
        store.open(digest, len(data) + 1)
    with pytest.raises(ValueError, match="invalid byte range"):
        store.open(digest, 10, 5)
    with pytest.raises(BlobNotFoundError):
        store.open(sha(b"absent"))


@pytest.mark.parametrize("size", [10, 11 * MiB + 5])
@pytest.mark.parametrize(
    "mistake", ["sha256", "size-short", "size-long", "dropped"], ids=lambda m: m
)
def test_failed_put_leaves_nothing_behind(store: BlobStore, backend, size: int, mistake: str):
    data = os.urandom(size)
    if mistake == "sha256":
        wrong = sha(b"something else")
        with pytest.raises(BlobIntegrityError) as caught:
            store.put_stream(io.BytesIO(data), expected_sha256=wrong, expected_size=size)
        assert wrong in str(caught.value) and sha(data) in str(caught.value)
    elif mistake == "size-short":
        with pytest.raises(BlobIntegrityError, match=f"expected {size + 1} bytes, received {size}"):
            store.put_stream(io.BytesIO(data), expected_size=size + 1)
    elif mistake == "size-long":
        with pytest.raises(BlobIntegrityError, match=f"expected {size - 1} bytes, received more"):
            store.put_stream(io.BytesIO(data), expected_size=size - 1)
    else:
        stream = GeneratedStream(iter([data]), fail_after=size - 3)
        with pytest.raises(ConnectionResetError):
            store.put_stream(stream, expected_sha256=sha(data))
    assert backend.listing() == set()
    assert not store.exists(sha(data))


def test_delete(store: BlobStore, backend) -> None:
    keep = store.put_stream(io.BytesIO(b"keep")).sha256
    gone = store.put_stream(io.BytesIO(b"gone")).sha256
    store.delete(gone)
    assert not store.exists(gone)
    with pytest.raises(BlobNotFoundError, match=gone):
        store.size(gone)
    store.delete(gone)  # deleting what is absent is not an error
    assert [s for s, _, _ in store.iter_blobs()] == [keep]


BAD_SHAS = ["", "abc", "A" * 64, "../" + "a" * 61, "a" * 63 + "/", "g" * 64, "a" * 65]


@pytest.mark.parametrize("bad", BAD_SHAS)
def test_invalid_sha256_is_refused(store: BlobStore, backend, bad: str) -> None:
    calls = [
        lambda: store.exists(bad),
        lambda: store.size(bad),
        lambda: store.open(bad),
        lambda: store.local_path(bad),
        lambda: store.presigned_url(bad, expires_in=60),
        lambda: store.delete(bad),
        lambda: store.put_stream(io.BytesIO(b"x"), expected_sha256=bad),
        lambda: store.stage_commit("up", expected_sha256=bad, expected_size=0),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="invalid sha256"):
            call()
    assert backend.listing() == set()


def test_health_check_passes(store: BlobStore) -> None:
    store.check_health()


# Staging


def test_staged_chunks_commit_into_a_blob(store: BlobStore, backend) -> None:
    data = os.urandom(9 * MiB + 3)  # more than one S3 multipart part
    chunks = [data[: 2 * MiB], data[2 * MiB : 5 * MiB], data[5 * MiB :]]
    offset = 0
    for chunk in chunks[:2]:
        offset = store.stage_write("upload-1", offset, io.BytesIO(chunk), len(chunk))
    assert offset == 5 * MiB

    restarted = backend.open()  # another server process, or the same one after a restart
    assert restarted.staged_size("upload-1") == 5 * MiB
    assert restarted.staged_size("never-started") == 0
    with pytest.raises(StagingOffsetError, match=f"expected offset {5 * MiB}"):
        restarted.stage_write("upload-1", 2 * MiB, io.BytesIO(chunks[2]))
    with pytest.raises(StagingOffsetError, match="expected offset 0"):
        restarted.stage_write("never-started", 5, io.BytesIO(b"late chunk"))
    assert not any("never-started" in key for key in backend.listing())
    assert restarted.stage_write("upload-1", offset, io.BytesIO(chunks[2])) == len(data)

    info = restarted.stage_commit("upload-1", expected_sha256=sha(data), expected_size=len(data))
    assert (info.sha256, info.size, info.created) == (sha(data), len(data), True)
    with store.open(info.sha256) as fh:
        assert fh.read() == data
    assert store.staged_size("upload-1") == 0
    assert list(store.iter_staging()) == []
    assert not any("staging" in key for key in backend.listing())


def test_commit_of_known_content_dedups(store: BlobStore, backend) -> None:
    data = b"shared base weights" * 100
    store.put_stream(io.BytesIO(data))
    store.stage_write("again", 0, io.BytesIO(data))
    before = {k for k in backend.listing() if "staging" not in k}
    info = store.stage_commit("again", expected_sha256=sha(data), expected_size=len(data))
    assert info.created is False
    assert backend.listing() == before


def test_empty_upload_commits(store: BlobStore) -> None:
    info = store.stage_commit("empty", expected_sha256=sha(b""), expected_size=0)
    assert (info.size, info.sha256) == (0, sha(b""))
    assert store.exists(sha(b""))


@pytest.mark.parametrize("mistake", ["sha256", "size"])
def test_commit_mismatch_discards_staging(store: BlobStore, backend, mistake: str) -> None:
    data = os.urandom(MiB)
    store.stage_write("bad", 0, io.BytesIO(data))
    expected_sha = sha(b"other") if mistake == "sha256" else sha(data)
    expected_size = len(data) if mistake == "sha256" else len(data) + 1
    with pytest.raises(BlobIntegrityError, match="expected"):
        store.stage_commit("bad", expected_sha256=expected_sha, expected_size=expected_size)
    assert store.staged_size("bad") == 0
    assert backend.listing() == set()


def test_discard_and_iter_staging(store: BlobStore, backend) -> None:
    store.stage_write("a.1", 0, io.BytesIO(b"alpha"))
    store.stage_write("a.1", 5, io.BytesIO(b"beta"))
    store.stage_write("b_2", 0, io.BytesIO(b"gamma"))
    staging = dict(backend.open().iter_staging())
    assert set(staging) == {"a.1", "b_2"}
    for modified in staging.values():
        assert modified.tzinfo is not None
        assert abs(modified - datetime.now(UTC)) < timedelta(minutes=5)
    store.stage_discard("a.1")
    store.stage_discard("a.1")
    store.stage_discard("never-started")
    assert store.staged_size("a.1") == 0
    assert [key for key, _ in store.iter_staging()] == ["b_2"]
    assert store.stage_write("a.1", 0, io.BytesIO(b"fresh")) == 5


def test_empty_chunk_changes_nothing(store: BlobStore, backend) -> None:
    assert store.stage_write("up", 0, io.BytesIO(b"")) == 0
    assert store.stage_write("up", 0, io.BytesIO(b"abc")) == 3
    before = backend.listing()
    assert store.stage_write("up", 3, io.BytesIO(b""), 0) == 3
    assert backend.listing() == before


@pytest.mark.parametrize("failure", ["short", "dropped"])
def test_broken_chunk_is_not_counted(store: BlobStore, failure: str) -> None:
    store.stage_write("up", 0, io.BytesIO(b"first-"))
    chunk = os.urandom(3 * MiB)
    if failure == "short":
        with pytest.raises(BlobIntegrityError, match=f"after {len(chunk)} of {len(chunk) + 1}"):
            store.stage_write("up", 6, io.BytesIO(chunk), len(chunk) + 1)
    else:
        with pytest.raises(ConnectionResetError):
            store.stage_write("up", 6, GeneratedStream(iter([chunk]), fail_after=2 * MiB))
    assert store.staged_size("up") == 6
    store.stage_write("up", 6, io.BytesIO(chunk), len(chunk))
    data = b"first-" + chunk
    assert store.stage_commit("up", expected_sha256=sha(data), expected_size=len(data)).created


def test_chunk_length_limits_what_is_read(store: BlobStore) -> None:
    stream = io.BytesIO(b"0123456789")
    assert store.stage_write("up", 0, stream, 4) == 4
    assert stream.read() == b"456789"


KILLED_WRITER = """
import sys
from pathlib import Path
from registry.storage import open_blob_store
from tests.registry.test_storage import GeneratedStream, pattern
store = open_blob_store(sys.argv[1], instance_path=Path("."))
store.stage_write("up", int(sys.argv[2]), GeneratedStream(pattern(8 << 20), block_after=3 << 20))
"""


def test_writer_killed_mid_chunk_leaves_no_half_chunk(store: BlobStore, backend) -> None:
    first = os.urandom(MiB)
    store.stage_write("up", 0, io.BytesIO(first))
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, backend.url, str(MiB)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"blocked\n"
        if backend.kind == "local":  # the torn tail really is on disk
            assert (backend.root / "staging" / "up" / "data").stat().st_size == 4 * MiB
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert backend.open().staged_size("up") == MiB
    second = os.urandom(100)
    assert store.stage_write("up", MiB, io.BytesIO(second)) == MiB + 100
    data = first + second
    assert store.stage_commit("up", expected_sha256=sha(data), expected_size=len(data)).created


def test_concurrent_writers_at_one_offset(backend) -> None:
    release = threading.Event()

    class SlowStream(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            super().__init__()
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:  # type: ignore[override]
            release.wait(10)
            return self._data.readinto(buffer)

    outcomes: dict[str, object] = {}

    def write(name: str, data: bytes) -> None:
        try:
            outcomes[name] = backend.open().stage_write("up", 0, SlowStream(data))
        except StagingOffsetError as exc:
            outcomes[name] = exc

    writers = [
        threading.Thread(target=write, args=("a", b"a" * 10)),
        threading.Thread(target=write, args=("b", b"b" * 20)),
    ]
    for writer in writers:
        writer.start()
    time.sleep(0.5)
    release.set()
    for writer in writers:
        writer.join(30)
    sizes = [o for o in outcomes.values() if isinstance(o, int)]
    refused = [o for o in outcomes.values() if isinstance(o, StagingOffsetError)]
    assert len(sizes) == 1 and len(refused) == 1, outcomes
    assert backend.open().staged_size("up") == sizes[0]


@pytest.mark.parametrize("bad", ["", "..", ".", "a/b", "../up", "up load", "ü", "x" * 201])
def test_invalid_upload_key_is_refused(store: BlobStore, backend, bad: str) -> None:
    calls = [
        lambda: store.stage_write(bad, 0, io.BytesIO(b"x")),
        lambda: store.staged_size(bad),
        lambda: store.stage_commit(bad, expected_sha256=sha(b"x"), expected_size=1),
        lambda: store.stage_discard(bad),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="invalid upload key"):
            call()
    assert backend.listing() == set()


# Memory


def test_memory_does_not_grow_with_file_size(store: BlobStore) -> None:
    total = 256 * MiB
    expected = pattern_sha(total)
    store.check_health()  # the S3 client and its service model load before measuring
    tracemalloc.start()
    try:
        info = store.put_stream(GeneratedStream(pattern(total)), expected_sha256=expected)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (info.sha256, info.size) == (expected, total)
    assert peak < 20 * MiB, f"peak {peak / MiB:.1f} MiB while storing {total // MiB} MiB"


def test_staging_memory_does_not_grow_with_chunk_size(store: BlobStore) -> None:
    chunk = 48 * MiB
    digest = hashlib.sha256()
    for _ in range(2):
        for block in pattern(chunk):
            digest.update(block)
    store.check_health()
    tracemalloc.start()
    try:
        store.stage_write("big", 0, GeneratedStream(pattern(chunk)))
        store.stage_write("big", chunk, GeneratedStream(pattern(chunk)), chunk)
        info = store.stage_commit(
            "big", expected_sha256=digest.hexdigest(), expected_size=2 * chunk
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == 2 * chunk
    # S3 holds two part buffers: one fills from the request while the other uploads.
    limit = 24 * MiB if isinstance(store, S3BlobStore) else 20 * MiB
    assert peak < limit, f"peak {peak / MiB:.1f} MiB while staging two {chunk // MiB} MiB chunks"


# Local only


def test_local_store_serves_its_file(tmp_path: Path) -> None:
    store = open_blob_store((tmp_path / "b").as_uri(), instance_path=tmp_path)
    digest = store.put_stream(io.BytesIO(b"abc")).sha256
    path = store.local_path(digest)
    assert path == tmp_path / "b" / "sha256" / digest[:2] / digest[2:4] / digest
    assert path.read_bytes() == b"abc"
    assert store.presigned_url(digest, expires_in=60) is None
    with pytest.raises(BlobNotFoundError):
        store.local_path(sha(b"absent"))


def test_disk_full_raises_unavailable_and_leaves_nothing(tiny_disk: TinyDisk) -> None:
    tiny_disk = tiny_disk.path
    store = LocalBlobStore(tiny_disk / "blobs")
    backend = LocalBackend(tiny_disk / "blobs")
    data = os.urandom(3 * MiB)
    with pytest.raises(StorageUnavailableError, match=f"disk full under {tiny_disk}"):
        store.put_stream(io.BytesIO(data))
    assert backend.listing() == set()

    store.stage_write("up", 0, io.BytesIO(b"x" * 1000))
    with pytest.raises(StorageUnavailableError, match="disk full"):
        store.stage_write("up", 1000, io.BytesIO(data))
    assert store.staged_size("up") == 1000
    assert (tiny_disk / "blobs" / "staging" / "up" / "data").stat().st_size == 1000
    # The space was given back: a small blob still fits, and the upload can still finish.
    assert store.put_stream(io.BytesIO(b"small")).created
    store.check_health()
    info = store.stage_commit("up", expected_sha256=sha(b"x" * 1000), expected_size=1000)
    assert info.created


# S3 only


def test_presigned_url_downloads_with_range(s3_storage_url: str) -> None:
    store = open_blob_store(s3_storage_url, instance_path=Path("."))
    data = os.urandom(100_000)
    digest = store.put_stream(io.BytesIO(data)).sha256
    assert store.local_path(digest) is None

    url = store.presigned_url(digest, expires_in=60)
    assert url is not None and "X-Amz-Signature" in url
    assert requests.get(url, timeout=10).content == data
    ranged = requests.get(url, headers={"Range": "bytes=10-19"}, timeout=10)
    assert ranged.status_code == 206
    assert ranged.content == data[10:20]

    named = store.presigned_url(digest, expires_in=60, filename="unet/café model.safetensors")
    answer = requests.get(named, timeout=10)
    assert answer.content == data
    disposition = answer.headers["Content-Disposition"]
    assert 'filename="caf_ model.safetensors"' in disposition
    assert "filename*=UTF-8''caf%C3%A9%20model.safetensors" in disposition


def test_s3_server_down_raises_unavailable(s3_server, tmp_path: Path) -> None:
    url = s3_url(s3_server.endpoint, "fault-test")
    store = open_blob_store(url, instance_path=tmp_path)
    store.ensure_bucket()
    digest = store.put_stream(io.BytesIO(b"before the outage")).sha256

    s3_server.stop()
    calls = [
        store.check_health,
        lambda: store.exists(digest),
        lambda: store.size(digest),
        lambda: store.open(digest),
        lambda: store.put_stream(io.BytesIO(b"during the outage")),
        lambda: list(store.iter_blobs()),
        lambda: store.stage_write("up", 0, io.BytesIO(b"chunk")),
    ]
    for call in calls:
        with pytest.raises(StorageUnavailableError, match=f"{s3_server.endpoint}.*unreachable"):
            call()

    s3_server.start()  # moto starts empty: the bucket itself is gone now
    with pytest.raises(StorageUnavailableError, match="fault-test"):
        store.check_health()
    store.ensure_bucket()
    store.check_health()


def test_closed_port_raises_unavailable(aws_env: None, tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = open_blob_store(s3_url(endpoint, "nowhere"), instance_path=tmp_path)
    with pytest.raises(StorageUnavailableError, match=f"S3 endpoint {endpoint}"):
        store.check_health()


# Choosing a store by URL


def test_open_blob_store_by_url(tmp_path: Path) -> None:
    default = open_blob_store("", instance_path=tmp_path)
    assert isinstance(default, LocalBlobStore) and default.root == tmp_path / "blobs"
    assert isinstance(default, BlobStore)
    relative = open_blob_store("file:data/blobs", instance_path=tmp_path)
    assert isinstance(relative, LocalBlobStore) and relative.root == tmp_path / "data" / "blobs"
    absolute = open_blob_store("file:///srv/blobs", instance_path=tmp_path)
    assert isinstance(absolute, LocalBlobStore) and absolute.root == Path("/srv/blobs")

    s3 = open_blob_store(
        "s3://models/cxr/v1?endpoint=http://127.0.0.1:9000&region=eu-west-1"
        "&access_key=AK&secret_key=a%2Bb/c+d",
        instance_path=tmp_path,
    )
    assert isinstance(s3, S3BlobStore) and isinstance(s3, BlobStore)
    assert (s3.bucket, s3.prefix, s3.endpoint_url, s3.region) == (
        "models",
        "cxr/v1",
        "http://127.0.0.1:9000",
        "eu-west-1",
    )
    assert s3._credentials == ("AK", "a+b/c+d")

    for bad in ["ftp://host/x", "s3://bucket?endpint=http://x", "file://host/x", "s3:///x"]:
        with pytest.raises(ValueError):
            open_blob_store(bad, instance_path=tmp_path)


def test_s3_commit_moves_only_the_last_part(s3_storage_url: str) -> None:
    """Chunks go into the multipart upload as they arrive: committing sends only the bytes
    too small to have been a part yet, and reads nothing staged but those."""
    store = S3BlobStore.from_url(s3_storage_url)
    data = os.urandom(19 * MiB + 17)
    offset = 0
    for size in (8 * MiB, 10 * MiB, MiB + 17):  # parts of 8 and 8 MiB, a 3 MiB carry
        chunk = data[offset : offset + size]
        offset = store.stage_write("big", offset, io.BytesIO(chunk), expected_sha256=sha(data))
    moved = {"sent": 0, "read": 0}

    def count(params, **kwargs) -> None:
        body = params.get("body")
        if hasattr(body, "__len__"):
            moved["sent"] += len(body)

    def count_reads(http_response, parsed, model, **kwargs) -> None:
        if model.name == "GetObject":
            moved["read"] += int(http_response.headers.get("content-length", 0))

    events = store._s3.meta.events
    events.register("before-call.s3.*", count)
    events.register("after-call.s3.*", count_reads)
    info = store.stage_commit("big", expected_sha256=sha(data), expected_size=len(data))
    assert info.created and store.size(sha(data)) == len(data)
    assert 0 < moved["sent"] < 4 * MiB and 0 < moved["read"] < 4 * MiB, moved
    assert S3Backend(s3_storage_url).listing() == {store._key(blob_key(sha(data)))}
