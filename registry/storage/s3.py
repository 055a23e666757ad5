"""``S3BlobStore``: blobs as objects in an S3-compatible bucket, via boto3."""

from __future__ import annotations

import io
import math
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from registry.storage.base import (
    BlobInfo,
    BlobNotFoundError,
    IncompleteUpload,
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
from registry.storage.s3_parts import (
    MultipartUpload,
    ObjectReader,
    backend_errors,
    content_disposition,
    error_code,
    http_status,
)
from registry.storage.s3_staging import S3Staging
from registry.storage.streams import READ_SIZE, ContentDigest, ViewReader, fill

PART_SIZE = 8 * 1024 * 1024
URL_OPTIONS = {"endpoint", "region", "access_key", "secret_key", "addressing"}
_client_lock = threading.Lock()
# Every call has a deadline. A hung endpoint costs at most attempts x (connect + read)
# seconds (plus a short backoff): 99 s for a transfer, 14 s for a lookup, 2 s for health.
# The read timeout is per socket read, so a long transfer that keeps moving is not cut.
CLIENT_LIMITS: dict[str, dict[str, Any]] = {
    "data": {
        "connect_timeout": 3,
        "read_timeout": 30,
        "retries": {"max_attempts": 3, "mode": "standard"},
    },
    "meta": {
        "connect_timeout": 2,
        "read_timeout": 5,
        "retries": {"max_attempts": 2, "mode": "standard"},
    },
    "health": {
        "connect_timeout": 1,
        "read_timeout": 1,
        "retries": {"max_attempts": 1, "mode": "standard"},
    },
}
_session: boto3.session.Session | None = None


class S3BlobStore:
    """Blobs at ``<prefix>/sha256/ab/cd/<hex>``; staged uploads under ``<prefix>/staging/``
    (see ``registry.storage.s3_staging``: chunks become multipart parts directly).

    Uploads go to the final key as a multipart upload completed only after the sha256 checks
    out, so no partial blob is ever visible. Interrupted multipart uploads stay invisible
    until ``gc`` aborts them (``iter_incomplete_uploads``) after the grace period.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        addressing_style: str | None = None,
        part_size: int = PART_SIZE,
    ) -> None:
        if not bucket:
            raise ValueError("an S3 store needs a bucket name")
        if part_size < 5 * 1024 * 1024:
            raise ValueError("S3 multipart parts must be at least 5 MiB")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self.part_size = part_size
        self._credentials = (access_key, secret_key)
        self._addressing = addressing_style or ("path" if endpoint_url else "auto")
        self._clients: dict[str, Any] = {}
        self._client_pid = 0
        self._staging = S3Staging(self)

    @classmethod
    def from_url(cls, url: str) -> S3BlobStore:
        """Build a store from ``s3://bucket/prefix?endpoint=URL&region=R&access_key=…&secret_key=…``.

        Query values are percent-decoded (``+`` stays ``+``); ``addressing`` is ``path`` or
        ``virtual``. Without ``access_key``/``secret_key`` boto3's usual chain is used
        (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, profiles, instance roles).
        """
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"not an S3 storage URL: {url!r}; use s3://BUCKET/PREFIX?endpoint=URL")
        options: dict[str, str] = {}
        for pair in filter(None, parts.query.split("&")):
            name, _, value = pair.partition("=")
            if name not in URL_OPTIONS:
                known = ", ".join(sorted(URL_OPTIONS))
                raise ValueError(f"unknown S3 storage URL option {name!r}; known: {known}")
            options[name] = unquote(value)
        return cls(
            parts.netloc,
            unquote(parts.path),
            endpoint_url=options.get("endpoint") or None,
            region=options.get("region") or None,
            access_key=options.get("access_key") or None,
            secret_key=options.get("secret_key") or None,
            addressing_style=options.get("addressing") or None,
        )

    def __repr__(self) -> str:
        return f"S3BlobStore({self.bucket!r}, {self.prefix!r}, endpoint_url={self.endpoint_url!r})"

    # Blobs

    def put_stream(
        self,
        stream: BinaryIO,
        *,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
    ) -> BlobInfo:
        """Hash while uploading in parts; complete the upload only once the bytes check out."""
        if expected_sha256 is not None:
            check_sha256(expected_sha256)
        return self._store(stream, expected_sha256, expected_size)

    def exists(self, sha256: str) -> bool:
        """HEAD the blob's object."""
        return self._head(self._key(blob_key(sha256))) is not None

    def size(self, sha256: str) -> int:
        """The object's ``ContentLength``."""
        head = self._head(self._key(blob_key(sha256)))
        if head is None:
            raise BlobNotFoundError(f"blob {sha256} not found")
        return int(head["ContentLength"])

    def open(self, sha256: str, start: int = 0, end: int | None = None) -> BinaryIO:
        """A streaming ranged GET of the object."""
        key = self._key(blob_key(sha256))
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"invalid byte range [{start}, {end})")
        if end == start:
            return self._empty_range(sha256, start)
        extra = {}
        if start or end is not None:
            extra["Range"] = f"bytes={start}-" + ("" if end is None else str(end - 1))
        try:
            with self._errors("opening a blob"):
                body = self._s3.get_object(Bucket=self.bucket, Key=key, **extra)["Body"]
        except ClientError as exc:
            if http_status(exc) == 404:
                raise BlobNotFoundError(f"blob {sha256} not found") from None
            if http_status(exc) == 416:
                return self._empty_range(sha256, start)
            raise
        reader = ObjectReader([], self._get_body, self._errors, first_body=body)
        return io.BufferedReader(reader, READ_SIZE)  # type: ignore[return-value]

    def local_path(self, sha256: str) -> Path | None:
        """Always None: objects have no local file."""
        check_sha256(sha256)
        return None

    def presigned_url(
        self, sha256: str, *, expires_in: int, filename: str | None = None
    ) -> str | None:
        """A presigned GET (signed locally, no request); ``filename`` sets Content-Disposition."""
        params = {"Bucket": self.bucket, "Key": self._key(blob_key(sha256))}
        if filename:
            params["ResponseContentDisposition"] = content_disposition(filename)
        with self._errors("signing a URL"):
            return self._s3.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=expires_in
            )

    def delete(self, sha256: str) -> None:
        """Delete the object (absent is fine)."""
        with self._errors("deleting a blob"):
            self._meta.delete_object(Bucket=self.bucket, Key=self._key(blob_key(sha256)))

    def iter_blobs(self) -> Iterator[tuple[str, int, datetime]]:
        """List ``sha256/`` and yield each well-formed blob key."""
        for obj in self._list(self._key("sha256/")):
            name = obj["Key"].rsplit("/", 1)[-1]
            if is_sha256(name) and obj["Key"] == self._key(blob_key(name)):
                yield name, int(obj["Size"]), obj["LastModified"].astimezone(UTC)

    def check_health(self) -> None:
        """HEAD the bucket, giving up within about two seconds."""
        try:
            with self._errors("checking the bucket"):
                self._client_for("health").head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            raise StorageUnavailableError(
                f"S3 bucket {self.bucket} at {self._where}: {error_code(exc) or http_status(exc)}"
            ) from exc

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (fixtures, ``make run``)."""
        try:
            with self._errors("checking the bucket"):
                self._meta.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if http_status(exc) != 404:
                raise StorageUnavailableError(
                    f"S3 bucket {self.bucket} at {self._where}: {error_code(exc)}"
                ) from exc
        extra: dict[str, Any] = {}
        if self.region and self.region != "us-east-1":
            extra["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            with self._errors("creating the bucket"):
                self._s3.create_bucket(Bucket=self.bucket, **extra)
        except ClientError as exc:
            if error_code(exc) != "BucketAlreadyOwnedByYou":
                raise

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
        """Send the chunk straight into the blob's multipart upload, hashing it on the way;
        it counts once its record is written, if no other writer's record got there first."""
        return self._staging.write(upload_key, offset, stream, length, expected_sha256)

    def staged_size(self, upload_key: str) -> int:
        """The end of the contiguous run of recorded chunks."""
        return self._staging.staged_size(upload_key)

    def stage_commit(
        self, upload_key: str, *, expected_sha256: str, expected_size: int
    ) -> BlobInfo:
        """Check the streamed sha256, send the last part, complete the multipart upload.

        Idempotent: a commit stopped half way, or run twice at once, finds the work done."""
        return self._staging.commit(
            upload_key, expected_sha256=expected_sha256, expected_size=expected_size
        )

    def stage_discard(self, upload_key: str) -> None:
        """Abort the upload's multipart upload and delete its staging objects."""
        self._staging.discard(upload_key)

    def iter_incomplete_uploads(self) -> Iterator[IncompleteUpload]:
        """Every unfinished multipart upload under the prefix, with the staging it serves."""
        owners: dict[str, str] = {}
        for upload_key, _ in list(self.iter_staging()):
            state = self._staging.tip(upload_key)[1]
            if state is not None and state.upload_id is not None:
                owners[state.upload_id] = upload_key
        with self._errors("listing multipart uploads"):
            pages = self._meta.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self._key("")
            )
            for page in pages:
                for upload in page.get("Uploads", []):
                    yield IncompleteUpload(
                        upload["Key"],
                        upload["UploadId"],
                        upload["Initiated"].astimezone(UTC),
                        owners.get(upload["UploadId"]),
                    )

    def put_meta(self, name: str, data: bytes) -> None:
        """PUT ``<prefix>/meta/<name>``."""
        key = self._key(f"meta/{check_meta_name(name)}")
        with self._errors("writing a record"):
            self._meta.put_object(Bucket=self.bucket, Key=key, Body=data)

    def get_meta(self, name: str) -> bytes | None:
        """GET ``<prefix>/meta/<name>``, or None."""
        key = self._key(f"meta/{check_meta_name(name)}")
        try:
            with self._errors("reading a record"):
                return bytes(self._meta.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except ClientError as exc:
            if http_status(exc) == 404:
                return None
            raise

    def list_meta(self, prefix: str) -> list[str]:
        """LIST ``<prefix>/meta/<prefix>/``."""
        base = self._key("meta/")
        listed = self._list(f"{base}{check_meta_name(prefix)}/")
        return sorted(obj["Key"][len(base) :] for obj in listed)

    def abort_incomplete_upload(self, upload: IncompleteUpload) -> None:
        """Abort one unfinished multipart upload (gone already is fine)."""
        self._staging.abort(upload.key, upload.upload_id)

    def iter_staging(self) -> Iterator[tuple[str, datetime]]:
        """Group ``staging/`` objects by upload key, with the newest chunk's time."""
        base = self._key("staging/")
        current: str | None = None
        newest: datetime | None = None
        for obj in self._list(base):
            upload_key = obj["Key"][len(base) :].split("/", 1)[0]
            if not is_upload_key(upload_key):
                continue  # not ours: stage_discard would refuse the name anyway
            if upload_key != current:
                if current is not None and newest is not None:
                    yield current, newest
                current, newest = upload_key, None
            modified = obj["LastModified"].astimezone(UTC)
            newest = modified if newest is None else max(newest, modified)
        if current is not None and newest is not None:
            yield current, newest

    # Internals

    @property
    def _s3(self) -> Any:
        """The client for transfers (object bodies, multipart parts)."""
        return self._client_for("data")

    @property
    def _meta(self) -> Any:
        """The client for small requests (HEAD, LIST, DELETE): it gives up sooner."""
        return self._client_for("meta")

    def _client_for(self, kind: str) -> Any:
        # One client per kind per process: a client inherited across gunicorn's fork shares
        # sockets.
        global _session
        with _client_lock:
            if self._client_pid != os.getpid():
                self._clients = {}
                self._client_pid = os.getpid()
            if kind not in self._clients:
                # One boto3 session per process: it caches the parsed service model.
                _session = _session or boto3.session.Session()
                access_key, secret_key = self._credentials
                self._clients[kind] = _session.client(
                    "s3",
                    region_name=self.region,
                    aws_access_key_id=access_key,
                    aws_secret_access_key=secret_key,
                    endpoint_url=self.endpoint_url,
                    config=Config(
                        signature_version="s3v4",
                        s3={"addressing_style": self._addressing},
                        # Plain PUTs work on every S3-compatible server.
                        request_checksum_calculation="when_required",
                        response_checksum_validation="when_required",
                        **CLIENT_LIMITS[kind],
                    ),
                )
            return self._clients[kind]

    @property
    def _where(self) -> str:
        return self.endpoint_url or f"AWS S3 ({self.region or 'default region'})"

    def _errors(self, doing: str) -> Any:
        return backend_errors(f"{self._where} (bucket {self.bucket})", doing)

    def _key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def _stage_prefix(self, upload_key: str) -> str:
        return self._key(f"staging/{check_upload_key(upload_key)}/")

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            with self._errors("looking up a blob"):
                return self._meta.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if http_status(exc) == 404:
                return None
            raise

    def _get_body(self, key: str) -> Any:
        return self._s3.get_object(Bucket=self.bucket, Key=key)["Body"]

    def _list(self, prefix: str) -> Iterator[dict[str, Any]]:
        with self._errors("listing objects"):
            pages = self._meta.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                yield from page.get("Contents", [])

    def _empty_range(self, sha256: str, start: int) -> BinaryIO:
        size = self.size(sha256)
        if start > size:
            raise ValueError(f"range start {start} is past the end of blob {sha256} ({size} bytes)")
        return io.BytesIO(b"")

    def _store(
        self, stream: BinaryIO, expected_sha256: str | None, expected_size: int | None
    ) -> BlobInfo:
        digest = ContentDigest(expected_size)
        part_size = self._part_size_for(expected_size)
        # With a known sha256 the parts go to the final key, already present means only verify.
        if expected_sha256 is not None:
            target = self._key(blob_key(expected_sha256))
            present = self._head(target) is not None
        else:
            target = self._key(f"tmp/{uuid.uuid4().hex}")
            present = False
        upload = MultipartUpload(self._s3, self.bucket, target)
        buffer = memoryview(bytearray(part_size))
        temp_written = False
        try:
            with self._errors("uploading a blob"):
                while (n := fill(stream, buffer[: digest.room(part_size)])) == part_size:
                    digest.update(buffer[:n])
                    if not present:
                        upload.send(buffer[:n])
                digest.update(buffer[:n])
                sha256 = digest.verify(expected_sha256)
                if present:
                    return BlobInfo(sha256, digest.size, created=False)
                final = self._key(blob_key(sha256))
                if not upload.started:
                    created = self._put_if_absent(final, buffer[:n])
                    return BlobInfo(sha256, digest.size, created)
                if n:
                    upload.send(buffer[:n])
                if target == final:
                    return BlobInfo(sha256, digest.size, upload.complete(if_absent=True))
                upload.complete(if_absent=False)
                temp_written = True
                if self._head(final) is not None:
                    return BlobInfo(sha256, digest.size, created=False)
                self._s3.copy(
                    {"Bucket": self.bucket, "Key": target},
                    self.bucket,
                    final,
                    Config=TransferConfig(multipart_chunksize=part_size, max_concurrency=4),
                )
                return BlobInfo(sha256, digest.size, created=True)
        finally:
            upload.abort()
            if temp_written:
                with self._errors("removing a temporary object"):
                    self._s3.delete_object(Bucket=self.bucket, Key=target)

    def _put_if_absent(self, key: str, view: memoryview) -> bool:
        try:
            self._s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=ViewReader(view),
                ContentLength=len(view),
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if http_status(exc) == 412:
                return False
            raise
        return True

    def _part_size_for(self, expected_size: int | None) -> int:
        if not expected_size:
            return self.part_size
        mib = 1024 * 1024
        needed = math.ceil(expected_size / MultipartUpload.MAX_PARTS / mib) * mib
        return max(self.part_size, needed)
