"""Receiving a file's bytes in chunks and turning a fully received file into a blob."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re
from typing import BinaryIO

from sqlalchemy.orm import Session

from registry.errors import BadRequest, Conflict, RangeNotSatisfiable, ValidationFailed
from registry.models import UploadFile
from registry.publishing import ledger
from registry.publishing.sessions import upload_key
from registry.storage import BlobStore
from registry.storage.base import BlobInfo, BlobIntegrityError, StagingOffsetError

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)\Z")


class OffsetMismatch(Conflict):
    """A chunk does not start where the received bytes end; ``Upload-Offset`` says where."""

    code = "OffsetMismatch"


@dataclasses.dataclass(frozen=True)
class Chunk:
    start: int
    length: int


def parse_chunk(header: str | None, content_length: int | None, size: int, path: str) -> Chunk:
    """``Content-Range: bytes a-b/total`` (inclusive ``b``); no header means the whole file."""
    if header is None:
        if content_length is not None and content_length != size:
            raise BadRequest(
                f"{path}: without Content-Range the body must be the whole file ({size} bytes), "
                f"not {content_length} bytes"
            )
        return Chunk(0, size)
    match = _CONTENT_RANGE.match(header.strip())
    if match is None:
        raise BadRequest(
            f"{path}: Content-Range must look like 'bytes 0-1048575/{size}', not {header!r}"
        )
    start, last, total = (int(g) for g in match.groups())
    if total != size:
        raise BadRequest(f"{path}: Content-Range total {total} differs from the declared {size}")
    if last < start or last >= size:
        raise RangeNotSatisfiable(
            f"{path}: Content-Range {header!r} is not within the file's {size} bytes",
            headers={"Content-Range": f"bytes */{size}"},
        )
    length = last - start + 1
    if content_length is not None and content_length != length:
        raise BadRequest(
            f"{path}: Content-Length {content_length} differs from the Content-Range length "
            f"{length}"
        )
    return Chunk(start, length)


def received(blobs: BlobStore, row: UploadFile) -> int:
    """How many bytes of the file the registry holds."""
    return row.size if row.complete else blobs.staged_size(upload_key(row))


@dataclasses.dataclass(frozen=True)
class Received:
    """What one PUT left behind: bytes received so far, and the blob if the file is stored."""

    size: int
    blob: BlobInfo | None = None


def receive(blobs: BlobStore, row: UploadFile, chunk: Chunk, stream: BinaryIO) -> Received:
    """Store a PUT body: a whole file in one pass (hashed as it is written), else a chunk."""
    if chunk.start == 0 and chunk.length == row.size and blobs.staged_size(upload_key(row)) == 0:
        return Received(row.size, store_whole_file(blobs, row, stream))
    return Received(write_chunk(blobs, row, chunk, stream))


def store_whole_file(blobs: BlobStore, row: UploadFile, stream: BinaryIO) -> BlobInfo:
    """The entire file in one request: no staging, no second read; nothing kept on failure."""
    counted = _CountingReader(stream)
    try:
        return blobs.put_stream(counted, expected_sha256=row.sha256, expected_size=row.size)
    except BlobIntegrityError as error:
        if counted.count < row.size:
            raise BadRequest(
                f"{row.path}: the body was cut short after {counted.count} of {row.size} bytes; "
                "nothing of it was kept, send it again"
            ) from None
        raise _mismatch(row, error) from None


class _CountingReader(io.RawIOBase):
    """Counts the bytes read through it (to tell a cut-short body from wrong content)."""

    def __init__(self, stream: BinaryIO) -> None:
        super().__init__()
        self._stream = stream
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        readinto = getattr(self._stream, "readinto", None)
        if readinto is not None:  # straight into the store's buffer
            n = readinto(buffer) or 0
        else:
            data = self._stream.read(len(buffer))
            n = len(data)
            memoryview(buffer)[:n] = data
        self.count += n
        return n


def write_chunk(blobs: BlobStore, row: UploadFile, chunk: Chunk, stream: BinaryIO) -> int:
    """Stage one chunk (all or nothing); return the bytes received so far."""
    try:
        return blobs.stage_write(
            upload_key(row), chunk.start, stream, chunk.length, expected_sha256=row.sha256
        )
    except StagingOffsetError as error:
        raise OffsetMismatch(
            f"{row.path}: this chunk starts at byte {chunk.start} but {error.expected} bytes "
            "have been received; resume from there (HEAD tells the offset)",
            headers={"Upload-Offset": str(error.expected)},
        ) from None
    except BlobIntegrityError as error:
        raise BadRequest(
            f"{row.path}: the chunk was cut short ({error}); nothing of it was kept, send it again"
        ) from None


def finalize_file(db: Session, blobs: BlobStore, row: UploadFile, now: dt.datetime) -> bool:
    """If every byte is staged, verify the sha256 and store the blob; True when complete."""
    if row.complete:
        return True
    key = upload_key(row)
    if blobs.staged_size(key) != row.size:
        return False
    try:
        info = blobs.stage_commit(key, expected_sha256=row.sha256, expected_size=row.size)
    except BlobIntegrityError as error:
        raise _mismatch(row, error) from None
    mark_complete(db, row, info, now)
    return True


def mark_complete(db: Session, row: UploadFile, info: BlobInfo, now: dt.datetime) -> None:
    """The file's verified bytes are stored: remember the blob, tick the file off."""
    ledger.record_blob(db, info.sha256, info.size, now)
    row.complete = True
    db.flush()


def _mismatch(row: UploadFile, error: BlobIntegrityError) -> ValidationFailed:
    return ValidationFailed(
        f"{row.path}: the received bytes do not match the declared file ({error}); the "
        "upload of this file starts again at byte 0",
        details={"problems": [{"field": row.path, "problem": f"{error}; send it again"}]},
    )
