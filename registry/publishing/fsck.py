"""``fsck``: re-hash every stored blob and check every referenced blob is present."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.models import UploadFile, UploadSession
from registry.publishing import ledger
from registry.storage import BlobStore
from registry.storage.base import BlobNotFoundError

READ_SIZE = 4 * 1024 * 1024


@dataclasses.dataclass
class FsckReport:
    checked: int = 0
    bytes_checked: int = 0
    corrupt: list[str] = dataclasses.field(default_factory=list)
    missing: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.corrupt and not self.missing


def check_store(
    db: Session, blobs: BlobStore, *, progress: Callable[[str], None] | None = None
) -> FsckReport:
    """Every blob whose bytes do not hash to its name is corrupt; every blob a live version
    or open session needs but the store lacks is missing."""
    report = FsckReport()
    stored: dict[str, int] = {}
    for sha, size, _ in blobs.iter_blobs():
        stored[sha] = size
        actual = _rehash(blobs, sha)
        report.checked += 1
        report.bytes_checked += size
        if actual is None:
            report.missing.append(f"{sha}: vanished while being checked")
        elif actual != sha:
            report.corrupt.append(f"{sha}: content hashes to {actual}")
        if progress is not None:
            progress(sha)
    for sha, size in sorted(ledger.published_blobs(db).items()):
        if sha not in stored:
            report.missing.append(f"{sha}: needed by a version but not stored")
        elif stored[sha] != size:
            report.corrupt.append(f"{sha}: stored {stored[sha]} bytes, versions list {size}")
    pending = db.scalars(
        select(UploadFile)
        .join(UploadSession, UploadSession.id == UploadFile.session_id)
        .where(UploadSession.state == "open", UploadFile.complete.is_(True))
    )
    for row in pending:
        if row.sha256 not in stored:
            report.missing.append(
                f"{row.sha256}: received for upload session {row.session_id} ({row.path}) "
                "but not stored; the file must be sent again"
            )
    return report


def _rehash(blobs: BlobStore, sha: str) -> str | None:
    digest = hashlib.sha256()
    try:
        with blobs.open(sha) as stream:
            while chunk := stream.read(READ_SIZE):
                digest.update(chunk)
    except BlobNotFoundError:
        return None
    return digest.hexdigest()
