"""The ``BlobStore`` protocol, its result type and its errors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable


@dataclass(frozen=True)
class BlobInfo:
    """What ``put_stream`` or ``stage_commit`` stored: its sha256, size and whether it was new."""

    sha256: str
    size: int
    created: bool  # False if identical content was already stored (dedup)


@dataclass(frozen=True)
class IncompleteUpload:
    """An unfinished multipart upload in an object store, and the staged upload it serves
    (``upload_key``), or None when no staging record names it (a writer stopped early)."""

    key: str
    upload_id: str
    initiated: datetime
    upload_key: str | None


class BlobIntegrityError(ValueError):
    """The bytes received do not match the expected size or sha256."""


class BlobNotFoundError(KeyError):
    """No blob with that sha256 is stored."""

    def __str__(self) -> str:
        # KeyError would repr() the message; keep it readable in logs and HTTP errors.
        return str(self.args[0]) if self.args else "blob not found"


class StagingOffsetError(ValueError):
    """A staged chunk does not start where the staged bytes end."""

    def __init__(self, upload_key: str, offset: int, expected: int) -> None:
        super().__init__(
            f"upload {upload_key}: chunk starts at byte {offset}, expected offset {expected}"
        )
        self.upload_key = upload_key
        self.offset = offset
        self.expected = expected


class StorageUnavailableError(RuntimeError):
    """The storage backend is unreachable or broken; the server answers 503."""


class StorageFullError(StorageUnavailableError):
    """The storage backend has no room left; the server answers 507."""


@runtime_checkable
class BlobStore(Protocol):
    """Content-addressed blob storage with staging for resumable uploads."""

    def put_stream(
        self,
        stream: BinaryIO,
        *,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
    ) -> BlobInfo:
        """Store a stream under its sha256; nothing is left behind on mismatch or error."""
        ...

    def exists(self, sha256: str) -> bool:
        """Whether a blob with this sha256 is stored."""
        ...

    def size(self, sha256: str) -> int:
        """The blob's size in bytes; ``BlobNotFoundError`` if absent."""
        ...

    def open(self, sha256: str, start: int = 0, end: int | None = None) -> BinaryIO:
        """Stream bytes ``[start, end)`` of a blob; ``end=None`` (or past EOF) reads to EOF."""
        ...

    def local_path(self, sha256: str) -> Path | None:
        """The blob's file for sendfile, or None when the store is not a local folder."""
        ...

    def presigned_url(
        self, sha256: str, *, expires_in: int, filename: str | None = None
    ) -> str | None:
        """A short-lived direct download URL, or None when the store cannot make one."""
        ...

    def delete(self, sha256: str) -> None:
        """Remove a blob; deleting an absent blob is not an error."""
        ...

    def iter_blobs(self) -> Iterator[tuple[str, int, datetime]]:
        """Every stored blob as ``(sha256, size, last_modified_utc)``."""
        ...

    def check_health(self) -> None:
        """Raise ``StorageUnavailableError`` unless the backend can be read and written."""
        ...

    def stage_write(
        self,
        upload_key: str,
        offset: int,
        stream: BinaryIO,
        length: int | None = None,
        *,
        expected_sha256: str | None = None,
    ) -> int:
        """Append one chunk at ``offset`` (all or nothing); return the new staged size.

        ``expected_sha256`` (the declared file's) lets a store send the bytes to their final
        place at once; the check itself happens in ``stage_commit``."""
        ...

    def staged_size(self, upload_key: str) -> int:
        """How many bytes are staged for an upload; 0 when nothing is."""
        ...

    def stage_commit(
        self, upload_key: str, *, expected_sha256: str, expected_size: int
    ) -> BlobInfo:
        """Verify the staged bytes and move them into content-addressed storage."""
        ...

    def stage_discard(self, upload_key: str) -> None:
        """Forget everything staged for an upload."""
        ...

    def iter_staging(self) -> Iterator[tuple[str, datetime]]:
        """Every staged upload as ``(upload_key, last_modified_utc)``, for garbage collection."""
        ...

    def iter_incomplete_uploads(self) -> Iterator[IncompleteUpload]:
        """Unfinished multipart uploads (object stores; none for a folder), for gc."""
        ...

    def abort_incomplete_upload(self, upload: IncompleteUpload) -> None:
        """Abort one of ``iter_incomplete_uploads``; already gone is not an error."""
        ...

    def put_meta(self, name: str, data: bytes) -> None:
        """Store a small record under ``meta/<name>`` (durably; replaces an older one)."""
        ...

    def get_meta(self, name: str) -> bytes | None:
        """A record ``put_meta`` stored, or None."""
        ...

    def list_meta(self, prefix: str) -> list[str]:
        """The names of the records under ``meta/<prefix>/``, sorted."""
        ...
