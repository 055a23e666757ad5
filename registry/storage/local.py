"""``LocalBlobStore``: blobs as files under one folder, moved into place atomically."""

from __future__ import annotations

import base64
import errno
import fcntl
import io
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from registry.storage.base import (
    BlobInfo,
    BlobIntegrityError,
    BlobNotFoundError,
    IncompleteUpload,
    StagingOffsetError,
    StorageFullError,
    StorageUnavailableError,
)
from registry.storage.keys import (
    blob_key,
    check_meta_name,
    check_sha256,
    check_upload_key,
    is_sha256,
    is_upload_key,
)
from registry.storage.resumable_hash import HashStateError, ResumableSha256
from registry.storage.streams import (
    READ_SIZE,
    ContentDigest,
    RangeReader,
    fill,
    pipelined_copy,
)

_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
_DISK_BROKEN = {errno.EIO, errno.EROFS}


class LocalBlobStore:
    """Blobs under ``root/sha256/ab/cd/<hex>``; temp files in ``root/tmp``, uploads in
    ``root/staging/<upload_key>/`` (``data`` plus a ``size`` marker naming the committed bytes)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._tmp = self.root / "tmp"
        self._staging = self.root / "staging"

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    # Blobs

    def put_stream(
        self,
        stream: BinaryIO,
        *,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
    ) -> BlobInfo:
        """Stream into ``tmp/``, fsync, verify, then ``os.replace`` into place."""
        if expected_sha256 is not None:
            check_sha256(expected_sha256)
        digest = ContentDigest(expected_size)
        with self._disk_errors():
            self._tmp.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self._tmp, prefix="put-")
            temp = Path(name)
            try:
                with open(fd, "wb") as fh:
                    pipelined_copy(stream, fh, digest)
                    fh.flush()
                    os.fsync(fh.fileno())
                sha256 = digest.verify(expected_sha256)
                return self._install(temp, sha256, digest.size)
            finally:
                temp.unlink(missing_ok=True)

    def exists(self, sha256: str) -> bool:
        """Whether the blob's file exists."""
        return self._path(sha256).is_file()

    def size(self, sha256: str) -> int:
        """The blob file's size."""
        try:
            return self._path(sha256).stat().st_size
        except FileNotFoundError:
            raise BlobNotFoundError(f"blob {sha256} not found") from None

    def open(self, sha256: str, start: int = 0, end: int | None = None) -> BinaryIO:
        """Open the blob file positioned at ``start``, reading up to ``end``."""
        _check_range(start, end)
        try:
            fh = open(self._path(sha256), "rb")  # noqa: SIM115 - the caller closes it
        except FileNotFoundError:
            raise BlobNotFoundError(f"blob {sha256} not found") from None
        size = os.fstat(fh.fileno()).st_size
        if start > size:
            fh.close()
            raise ValueError(f"range start {start} is past the end of blob {sha256} ({size} bytes)")
        stop = size if end is None else min(end, size)
        fh.seek(start)
        if stop == size:
            return fh
        return io.BufferedReader(RangeReader(fh, stop - start), READ_SIZE)  # type: ignore[return-value]

    def local_path(self, sha256: str) -> Path | None:
        """The blob's file (for sendfile); ``BlobNotFoundError`` if absent."""
        path = self._path(sha256)
        if not path.is_file():
            raise BlobNotFoundError(f"blob {sha256} not found")
        return path

    def presigned_url(
        self, sha256: str, *, expires_in: int, filename: str | None = None
    ) -> str | None:
        """Always None: a folder has no URLs; the server streams the file itself."""
        check_sha256(sha256)
        return None

    def delete(self, sha256: str) -> None:
        """Remove the blob's file if present."""
        with self._disk_errors():
            self._path(sha256).unlink(missing_ok=True)

    def iter_blobs(self) -> Iterator[tuple[str, int, datetime]]:
        """Walk ``sha256/ab/cd/`` and yield each well-formed blob file."""
        for first in _subdirs(self.root / "sha256"):
            for second in _subdirs(first):
                for entry in os.scandir(second):
                    if not is_sha256(entry.name):
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue  # deleted while listing
                    if stat.S_ISREG(st.st_mode):
                        yield entry.name, st.st_size, _utc(st.st_mtime)

    def check_health(self) -> None:
        """Create the folders and write, fsync and remove a probe file."""
        with self._disk_errors():
            for folder in (self._tmp, self._staging, self.root / "sha256"):
                folder.mkdir(parents=True, exist_ok=True)
            if os.statvfs(self.root).f_bavail == 0:
                raise OSError(errno.ENOSPC, "no free blocks")
            with tempfile.TemporaryFile(dir=self._tmp, prefix="health-") as fh:
                fh.write(b"ok")
                fh.flush()
                os.fsync(fh.fileno())

    # Staging

    def stage_write(
        self,
        upload_key: str,
        offset: int,
        stream: BinaryIO,
        length: int | None = None,
        *,
        expected_sha256: str | None = None,
    ) -> int:
        """Write the chunk after the committed bytes, hashing it on the way, fsync, then
        advance the ``size`` marker (which also keeps the running sha256 state)."""
        folder = self._stage_dir(upload_key)
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"invalid chunk offset {offset} or length {length}")
        if offset and not folder.exists():
            raise StagingOffsetError(upload_key, offset, 0)
        with self._disk_errors(), _locked_data(folder, create=True) as fd:
            staged, state = _read_marker_state(folder)
            if offset != staged:
                raise StagingOffsetError(upload_key, offset, staged)
            hasher = _resume_hash(staged, state)
            try:
                # A writer killed mid-chunk leaves bytes past the marker: they never count.
                os.ftruncate(fd, staged)
                written = _write_chunk(stream, fd, staged, length, hasher)
                if length is not None and written != length:
                    raise BlobIntegrityError(f"chunk ended after {written} of {length} bytes")
                if written:
                    os.fsync(fd)
                    _write_marker(folder, staged + written, hasher)
            except BaseException:
                os.ftruncate(fd, staged)
                raise
            return staged + written

    def staged_size(self, upload_key: str) -> int:
        """The committed size from the ``size`` marker."""
        return _read_marker(self._stage_dir(upload_key))

    def stage_commit(
        self, upload_key: str, *, expected_sha256: str, expected_size: int
    ) -> BlobInfo:
        """Hash the staged file in place, then ``os.replace`` it into the blob folder."""
        folder = self._stage_dir(upload_key)
        check_sha256(expected_sha256)
        with self._disk_errors():
            try:
                with _locked_data(folder, create=True) as fd:
                    staged, state = _read_marker_state(folder)
                    os.ftruncate(fd, staged)
                    if staged != expected_size:
                        raise BlobIntegrityError(
                            f"size mismatch: expected {expected_size} bytes, staged {staged}"
                        )
                    hasher = _resume_hash(staged, state)
                    if hasher is not None:  # hashed as the chunks arrived: no second read
                        sha256 = _verified(hasher.hexdigest(), expected_sha256)
                    else:  # staged by an older server that kept no hash state
                        digest = ContentDigest(expected_size)
                        _hash_fd(fd, staged, digest)
                        sha256 = digest.verify(expected_sha256)
                    info = self._install(folder / "data", sha256, staged)
            except BlobIntegrityError:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            # Only after success or a mismatch: a transient failure keeps the upload resumable.
            shutil.rmtree(folder, ignore_errors=True)
        return info

    def stage_discard(self, upload_key: str) -> None:
        """Remove the upload's staging folder."""
        folder = self._stage_dir(upload_key)
        if not folder.exists():
            return
        with self._disk_errors():
            try:
                with _locked_data(folder, create=False):
                    shutil.rmtree(folder)
            except FileNotFoundError:
                shutil.rmtree(folder, ignore_errors=True)

    def iter_incomplete_uploads(self) -> Iterator[IncompleteUpload]:
        """None: a folder has no multipart uploads."""
        return iter(())

    def abort_incomplete_upload(self, upload: IncompleteUpload) -> None:
        """Nothing to abort in a folder."""

    def put_meta(self, name: str, data: bytes) -> None:
        """Write ``meta/<name>`` atomically and durably."""
        path = self.root / "meta" / check_meta_name(name)
        with self._disk_errors():
            _make_dirs(path.parent)
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".meta-")
            try:
                with open(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(temp, path)
            finally:
                Path(temp).unlink(missing_ok=True)
            _fsync_dir(path.parent)

    def get_meta(self, name: str) -> bytes | None:
        """The bytes of ``meta/<name>``, or None."""
        try:
            return (self.root / "meta" / check_meta_name(name)).read_bytes()
        except FileNotFoundError:
            return None

    def list_meta(self, prefix: str) -> list[str]:
        """The files under ``meta/<prefix>/``."""
        folder = self.root / "meta" / check_meta_name(prefix)
        try:
            names = [e.name for e in os.scandir(folder) if e.is_file() and e.name[0] != "."]
        except FileNotFoundError:
            return []
        return sorted(f"{prefix}/{name}" for name in names)

    def iter_staging(self) -> Iterator[tuple[str, datetime]]:
        """Yield each staging folder with its newest modification time."""
        for folder in _subdirs(self._staging):
            if not is_upload_key(folder.name):
                continue
            try:
                times = [folder.stat().st_mtime]
                times += [entry.stat().st_mtime for entry in os.scandir(folder)]
            except FileNotFoundError:
                continue  # committed or discarded while listing
            yield folder.name, _utc(max(times))

    # Internals

    def _path(self, sha256: str) -> Path:
        return self.root / blob_key(sha256)

    def _stage_dir(self, upload_key: str) -> Path:
        return self._staging / check_upload_key(upload_key)

    def _install(self, temp: Path, sha256: str, size: int) -> BlobInfo:
        final = self._path(sha256)
        if final.is_file():
            temp.unlink()
            return BlobInfo(sha256, size, created=False)
        os.chmod(temp, 0o444)  # content-addressed blobs never change
        _make_dirs(final.parent)
        os.replace(temp, final)
        _fsync_dir(final.parent)
        return BlobInfo(sha256, size, created=True)

    @contextmanager
    def _disk_errors(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                raise StorageFullError(f"disk full under {self.root}") from exc
            if exc.errno in _DISK_BROKEN:
                raise StorageUnavailableError(
                    f"storage under {self.root} failed: {exc.strerror}"
                ) from exc
            raise


def _check_range(start: int, end: int | None) -> None:
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"invalid byte range [{start}, {end})")


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _subdirs(folder: Path) -> Iterator[Path]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield Path(entry.path)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(folder: Path) -> None:
    """Create ``folder`` and fsync the parent of every folder created, so the entry survives."""
    if folder.is_dir():
        return
    _make_dirs(folder.parent)
    try:
        folder.mkdir()
    except FileExistsError:
        return
    _fsync_dir(folder.parent)


@contextmanager
def _locked_data(folder: Path, *, create: bool) -> Iterator[int]:
    """Open and ``flock`` the staged ``data`` file, retrying if it was moved or removed while
    waiting for the lock (a concurrent commit or discard)."""
    for _ in range(10):
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(folder / "data", os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
        except FileNotFoundError:
            if create:
                continue
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(folder / "data"))
            except FileNotFoundError:
                same = False
            if same:
                yield fd
                return
        finally:
            os.close(fd)
    raise StorageUnavailableError(f"staging folder {folder} keeps changing; giving up")


def _read_marker(folder: Path) -> int:
    return _read_marker_state(folder)[0]


def _read_marker_state(folder: Path) -> tuple[int, str | None]:
    """The committed size and, when the writer kept one, the sha256 state after it."""
    try:
        size, _, state = (folder / "size").read_text().partition(" ")
    except FileNotFoundError:
        return 0, None
    return int(size), state.strip() or None


def _resume_hash(staged: int, state: str | None) -> ResumableSha256 | None:
    """The running sha256 of the staged bytes; None if an older marker kept no state."""
    if staged == 0:
        return ResumableSha256()
    if state is None:
        return None
    try:
        hasher = ResumableSha256.from_state(base64.b64decode(state))
    except (ValueError, HashStateError):
        return None
    return hasher if hasher.size == staged else None


def _verified(sha256: str, expected_sha256: str) -> str:
    if sha256 != expected_sha256:
        raise BlobIntegrityError(f"sha256 mismatch: expected {expected_sha256}, received {sha256}")
    return sha256


def _write_marker(folder: Path, size: int, hasher: ResumableSha256 | None = None) -> None:
    temp = folder / "size.tmp"
    state = "" if hasher is None else " " + base64.b64encode(hasher.state()).decode()
    with open(temp, "w") as fh:
        fh.write(f"{size}{state}")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temp, folder / "size")
    _fsync_dir(folder)


def _write_chunk(
    stream: BinaryIO, fd: int, position: int, length: int | None, hasher: ResumableSha256 | None
) -> int:
    view = memoryview(bytearray(READ_SIZE))
    written = 0
    while True:
        room = len(view) if length is None else min(len(view), length - written)
        n = fill(stream, view[:room]) if room else 0
        if not n:
            return written
        if hasher is not None:
            hasher.update(view[:n])
        done = 0
        while done < n:
            done += os.pwrite(fd, view[done:n], position + written + done)
        written += n


def _hash_fd(fd: int, size: int, digest: ContentDigest) -> None:
    view = memoryview(bytearray(READ_SIZE))
    position = 0
    while position < size:
        n = os.preadv(fd, [view[: min(len(view), size - position)]], position)
        if not n:
            break
        digest.update(view[:n])
        position += n
