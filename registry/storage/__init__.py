"""Content-addressed blob storage: a local folder or an S3-compatible bucket, chosen by URL.

``open_blob_store(url, instance_path=...)`` accepts

- ``file:///abs/path`` — a local folder (``file:rel/path`` is relative to the instance folder);
- ``s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1`` — any S3-compatible
  store. Credentials come from boto3's usual chain (``AWS_ACCESS_KEY_ID`` /
  ``AWS_SECRET_ACCESS_KEY``, profiles, instance roles); for tests the query may also carry
  ``access_key`` and ``secret_key`` (percent-encode them), and ``addressing=path|virtual``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from registry.storage.base import (
    BlobInfo,
    BlobIntegrityError,
    BlobNotFoundError,
    BlobStore,
    IncompleteUpload,
    StagingOffsetError,
    StorageFullError,
    StorageUnavailableError,
)
from registry.storage.local import LocalBlobStore

__all__ = [
    "BlobInfo",
    "BlobIntegrityError",
    "BlobNotFoundError",
    "BlobStore",
    "IncompleteUpload",
    "LocalBlobStore",
    "StagingOffsetError",
    "StorageFullError",
    "StorageUnavailableError",
    "open_blob_store",
]


def open_blob_store(url: str, *, instance_path: Path) -> BlobStore:
    """The blob store named by ``url``; an empty URL means ``<instance_path>/blobs``."""
    if not url:
        return LocalBlobStore(Path(instance_path) / "blobs")
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or parts.query:
            raise ValueError(f"unsupported file storage URL {url!r}; use file:///ABSOLUTE/PATH")
        path = Path(unquote(parts.path))
        return LocalBlobStore(path if path.is_absolute() else Path(instance_path) / path)
    if parts.scheme == "s3":
        from registry.storage.s3 import S3BlobStore  # boto3 loads only when S3 is used

        return S3BlobStore.from_url(url)
    raise ValueError(f"unsupported storage URL {url!r}; use file:///PATH or s3://BUCKET/PREFIX")
