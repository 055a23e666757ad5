"""Receiving a file's bytes in chunks and turning a fully received file into a blob."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import BinaryIO

from sqlalchemy.orm import Session

from registry.errors import BadRequest, Conflict, RangeNotSatisfiable, ValidationFailed
from registry.models import UploadFile
from registry.publishing import ledger
from registry.publishing.sessions import upload_key
from registry.storage import BlobStore
from registry.storage.base import BlobIntegrityError, StagingOffsetError

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


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


def write_chunk(blobs: BlobStore, row: UploadFile, chunk: Chunk, stream: BinaryIO) -> int:
    """Stage one chunk (all or nothing); return the bytes received so far."""
    try:
        return blobs.stage_write(upload_key(row), chunk.start, stream, chunk.length)
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
        raise ValidationFailed(
            f"{row.path}: the received bytes do not match the declared file ({error}); the "
            "upload of this file starts again at byte 0",
            details={"problems": [{"path": row.path, "reason": f"{error}; send it again"}]},
        ) from None
    ledger.record_blob(db, info.sha256, info.size, now)
    row.complete = True
    db.flush()
    return True
