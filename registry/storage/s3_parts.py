"""Pieces of ``S3BlobStore``: error mapping, multipart uploads and streaming object readers."""

from __future__ import annotations

import errno
import io
import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO
from urllib.parse import quote

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)

from registry.storage.base import StorageFullError, StorageUnavailableError
from registry.storage.streams import READ_SIZE, ViewReader, fill

log = logging.getLogger(__name__)

MAX_PUT = 5 * 1024**3  # S3's limit for one PUT: the largest staged chunk

_UNREACHABLE = (
    ConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)
# Client errors that mean the backend is misconfigured rather than that the request was wrong.
_BACKEND_CODES = {
    "NoSuchBucket",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "SlowDown",
    "RequestTimeTooSkewed",
}


def error_code(exc: ClientError) -> str:
    """The S3 error code of a ``ClientError`` (``"NoSuchKey"``, ``"404"``, …)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: ClientError) -> int:
    """The HTTP status of a ``ClientError``."""
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


@contextmanager
def backend_errors(where: str, doing: str) -> Iterator[None]:
    """Turn unreachable endpoints, 5xx answers and bad credentials into
    ``StorageUnavailableError``; other ``ClientError``s pass through for the caller."""
    try:
        yield
    except _UNREACHABLE as exc:
        raise StorageUnavailableError(
            f"S3 endpoint {where} unreachable while {doing}: {exc}"
        ) from exc
    except ClientError as exc:
        status = http_status(exc)
        if status >= 500 or status == 403 or error_code(exc) in _BACKEND_CODES:
            raise StorageUnavailableError(
                f"S3 endpoint {where} failed while {doing}: {error_code(exc)} "
                f"(HTTP {http_status(exc)})"
            ) from exc
        raise


class MultipartUpload:
    """One multipart upload, created on the first part; invisible until ``complete``."""

    MAX_PARTS = 10_000

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._client = client
        self.bucket = bucket
        self.key = key
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    @property
    def started(self) -> bool:
        """Whether any part has been sent."""
        return self._upload_id is not None

    def send(self, view: memoryview) -> None:
        """Upload the next part straight from ``view`` (no copy)."""
        if len(self._parts) >= self.MAX_PARTS:
            raise ValueError(f"more than {self.MAX_PARTS} parts for s3://{self.bucket}/{self.key}")
        if self._upload_id is None:
            created = self._client.create_multipart_upload(Bucket=self.bucket, Key=self.key)
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        answer = self._client.upload_part(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=ViewReader(view),
            ContentLength=len(view),
        )
        self._parts.append({"ETag": answer["ETag"], "PartNumber": number})

    def complete(self, *, if_absent: bool) -> bool:
        """Make the object visible; with ``if_absent``, False if the key already existed."""
        extra = {"IfNoneMatch": "*"} if if_absent else {}
        try:
            self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
                **extra,
            )
        except ClientError as exc:
            if if_absent and http_status(exc) == 412:
                return False
            raise
        self._upload_id = None
        return True

    def abort(self) -> None:
        """Drop the parts sent so far; best effort, since this runs while handling an error."""
        if self._upload_id is None:
            return
        upload_id, self._upload_id = self._upload_id, None
        try:
            self._client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=upload_id
            )
        except (BotoCoreError, ClientError) as exc:
            # The parts stay invisible; a bucket lifecycle rule
            # (AbortIncompleteMultipartUpload) reclaims them.
            log.warning("could not abort multipart upload of %s: %s", self.key, exc)


class ObjectReader(io.RawIOBase):
    """A raw reader over S3 objects read one after another, each fetched when reached.

    ``fetch(key)`` returns a botocore ``StreamingBody``; read failures become
    ``StorageUnavailableError`` via ``errors``.
    """

    def __init__(
        self,
        keys: list[str],
        fetch: Callable[[str], Any],
        errors: Callable[[str], Any],
        first_body: Any = None,
    ) -> None:
        super().__init__()
        self._keys = list(keys)
        self._fetch = fetch
        self._errors = errors
        self._body = first_body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        with self._errors("reading an object"):
            while True:
                if self._body is None:
                    if not self._keys:
                        return 0
                    self._body = self._fetch(self._keys.pop(0))
                data = self._body.read(len(buffer))
                if data:
                    memoryview(buffer)[: len(data)] = data
                    return len(data)
                self._body.close()
                self._body = None

    def close(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None
        super().close()


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and the exact name in RFC 5987 form."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1] or "download"
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def spool_chunk(stream: BinaryIO, spool: BinaryIO, length: int | None) -> int:
    """Copy a chunk into a local ``spool``: ``length`` bytes at most, or up to ``MAX_PUT``."""
    limit = MAX_PUT + 1 if length is None else length
    view = memoryview(bytearray(READ_SIZE))
    written = 0
    while n := fill(stream, view[: min(len(view), limit - written)]):
        written += n
        if written > MAX_PUT:
            raise ValueError(f"chunk larger than {MAX_PUT} bytes, the most one S3 PUT takes")
        try:
            spool.write(view[:n])
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFullError(
                    f"disk full under {tempfile.gettempdir()} while spooling a chunk for S3"
                ) from exc
            raise
    return written
