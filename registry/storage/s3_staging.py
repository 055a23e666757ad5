"""Resumable uploads on S3: every staged chunk goes straight into a multipart upload of the
blob, hashed as it streams, so finishing a file is one small part and ``CompleteMultipartUpload``.

Under ``<prefix>/staging/<upload_key>/``:

- ``<offset:020d>.<length:020d>.json`` — one record per accepted chunk, written last and only
  if absent (``If-None-Match: *``): the chunk counts once its record exists. It holds the
  multipart upload id and target key, the parts so far, the *carry* (bytes not yet in a part),
  and the running sha256 state after the chunk.
- ``<offset:020d>.<token>.carry`` — bytes of a chunk too small to be a part (S3 wants 5 MiB
  but for the last part); they join the next part, or become the last one at commit.
- ``blob`` — the multipart target when the declared sha256 was not known at the first chunk;
  with it (the API always passes it) the parts go to the blob's own key.

The multipart upload is invisible until completed, and it is completed only after the
streamed sha256 matches, so no unverified bytes ever appear under a content address.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import queue
import re
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, BinaryIO

from botocore.exceptions import ClientError

from registry.storage.base import BlobInfo, BlobIntegrityError, StagingOffsetError
from registry.storage.keys import blob_key, check_sha256
from registry.storage.resumable_hash import ResumableSha256
from registry.storage.s3_parts import MAX_PUT, error_code, http_status
from registry.storage.streams import ViewReader, fill

if TYPE_CHECKING:
    from registry.storage.s3 import S3BlobStore

MIN_PART = 5 * 1024 * 1024  # S3's smallest part but for the last
_RECORD = re.compile(r"\d{20}\.json")
BUFFERS = 2  # one part fills from the request while the other uploads


@dataclasses.dataclass
class StageState:
    """What the newest record says: where the parts go and what is not in a part yet."""

    target: str
    end: int = 0  # the staged size after this record's chunk
    upload_id: str | None = None
    parts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    carry: list[list[Any]] = dataclasses.field(default_factory=list)  # [key, size]
    hash_state: bytes | None = None

    @property
    def carry_size(self) -> int:
        return sum(int(size) for _, size in self.carry)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "target": self.target,
                "end": self.end,
                "upload_id": self.upload_id,
                "parts": self.parts,
                "carry": self.carry,
                "sha256_state": base64.b64encode(self.hash_state or b"").decode(),
            }
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> StageState:
        data = json.loads(raw)
        return cls(
            target=data["target"],
            end=int(data["end"]),
            upload_id=data["upload_id"],
            parts=list(data["parts"]),
            carry=list(data["carry"]),
            hash_state=base64.b64decode(data["sha256_state"]) or None,
        )


class S3Staging:
    """The staging half of ``S3BlobStore`` (it lends its clients, keys and error mapping)."""

    def __init__(self, store: S3BlobStore) -> None:
        self.store = store

    # Reading the records

    def record_keys(self, upload_key: str) -> list[str]:
        """The chunk records in offset order, if the first is at offset 0."""
        prefix = self.store._stage_prefix(upload_key)
        keys = [
            obj["Key"]
            for obj in self.store._list(prefix)
            if _RECORD.fullmatch(obj["Key"][len(prefix) :])
        ]
        if not keys or not keys[0].endswith(f"{0:020d}.json"):
            return []
        return keys

    def tip(self, upload_key: str) -> tuple[int, StageState | None]:
        """The staged size and the newest record's state (one LIST and one GET)."""
        keys = self.record_keys(upload_key)
        if not keys:
            return 0, None
        try:
            with self.store._errors("reading a staging record"):
                body = self.store._meta.get_object(Bucket=self.store.bucket, Key=keys[-1])
                state = StageState.from_json(body["Body"].read())
        except ClientError as exc:
            if http_status(exc) == 404:  # discarded while listing
                return 0, None
            raise
        return state.end, state

    def staged_size(self, upload_key: str) -> int:
        return self.tip(upload_key)[0]

    # Writing a chunk

    def write(
        self,
        upload_key: str,
        offset: int,
        stream: BinaryIO,
        length: int | None,
        expected_sha256: str | None,
    ) -> int:
        store = self.store
        prefix = store._stage_prefix(upload_key)
        if offset < 0 or (length is not None and not 0 <= length <= MAX_PUT):
            raise ValueError(f"invalid chunk offset {offset} or length {length}")
        if expected_sha256 is not None:
            check_sha256(expected_sha256)
        staged, state = self.tip(upload_key)
        if offset != staged:
            raise StagingOffsetError(upload_key, offset, staged)
        state = state or StageState(
            target=store._key(blob_key(expected_sha256)) if expected_sha256 else f"{prefix}blob"
        )
        hasher = (
            ResumableSha256.from_state(state.hash_state) if state.hash_state else ResumableSha256()
        )
        created_upload = state.upload_id is None
        carry_key: str | None = None
        try:
            with store._errors("staging a chunk"), _PartSender(store, state) as sender:
                written, tail = sender.receive(stream, length, hasher)
                if length is not None and written != length:
                    raise BlobIntegrityError(f"chunk ended after {written} of {length} bytes")
                if written == 0:
                    return staged
                if tail is not None and len(tail):
                    carry_key = f"{prefix}{offset:020d}.{uuid.uuid4().hex[:12]}.carry"
                    store._s3.put_object(
                        Bucket=store.bucket,
                        Key=carry_key,
                        Body=ViewReader(tail),
                        ContentLength=len(tail),
                    )
                    state.carry.append([carry_key, len(tail)])
                sender.wait()
            state.hash_state = hasher.state()
            state.end = staged + written
            self._put_record(upload_key, f"{prefix}{offset:020d}.json", state)
        except BaseException:
            self._undo(state if created_upload else None, carry_key)
            raise
        return staged + written

    def _put_record(self, upload_key: str, key: str, state: StageState) -> None:
        store = self.store
        try:
            with store._errors("recording a staged chunk"):
                store._s3.put_object(
                    Bucket=store.bucket,
                    Key=key,
                    Body=state.to_json(),
                    ContentType="application/json",
                    IfNoneMatch="*",
                )
        except ClientError as exc:
            if http_status(exc) == 412:  # another writer's chunk at this offset came first
                offset = int(key.rsplit("/", 1)[-1][:20])
                raise StagingOffsetError(upload_key, offset, self.staged_size(upload_key)) from None
            raise

    def _undo(self, created: StageState | None, carry_key: str | None) -> None:
        """Best effort after a failed chunk: its carry and an upload only it started go."""
        store = self.store
        try:
            if carry_key is not None:
                store._meta.delete_object(Bucket=store.bucket, Key=carry_key)
            if created is not None and created.upload_id is not None:
                store._s3.abort_multipart_upload(
                    Bucket=store.bucket, Key=created.target, UploadId=created.upload_id
                )
        except Exception:  # noqa: BLE001 - gc removes what is left after the grace period
            pass

    # Committing and discarding

    def commit(self, upload_key: str, *, expected_sha256: str, expected_size: int) -> BlobInfo:
        """Verify the streamed sha256, send the carry as the last part, complete the upload."""
        store = self.store
        check_sha256(expected_sha256)
        staged, state = self.tip(upload_key)
        if staged != expected_size:
            self.discard(upload_key)
            raise BlobIntegrityError(
                f"size mismatch: expected {expected_size} bytes, staged {staged}"
            )
        if state is None:  # nothing staged and nothing expected: the empty file
            return store.put_stream(io.BytesIO(b""), expected_sha256=expected_sha256)
        digest = ResumableSha256.from_state(state.hash_state or b"").hexdigest()
        if digest != expected_sha256:
            self.discard(upload_key)
            raise BlobIntegrityError(
                f"sha256 mismatch: expected {expected_sha256}, received {digest}"
            )
        final = store._key(blob_key(digest))
        with store._errors("completing an upload"):
            if store._head(final) is not None:  # dedup, or an earlier commit got this far
                self.discard(upload_key)
                return BlobInfo(digest, staged, created=False)
            created = self._complete(state, final)
        self.discard(upload_key, aborting=False)
        return BlobInfo(digest, staged, created=created)

    def _complete(self, state: StageState, final: str) -> bool:
        store = self.store
        carry = self._read_carry(state)
        if state.upload_id is None:  # under 5 MiB in all: one plain PUT
            return bool(store._put_if_absent(final, carry))
        parts = list(state.parts)
        if len(carry):
            number = len(parts) + 1
            answer = store._s3.upload_part(
                Bucket=store.bucket,
                Key=state.target,
                UploadId=state.upload_id,
                PartNumber=number,
                Body=ViewReader(carry),
                ContentLength=len(carry),
            )
            parts.append({"ETag": answer["ETag"], "PartNumber": number})
        extra = {"IfNoneMatch": "*"} if state.target == final else {}
        created = True
        try:
            store._s3.complete_multipart_upload(
                Bucket=store.bucket,
                Key=state.target,
                UploadId=state.upload_id,
                MultipartUpload={"Parts": parts},
                **extra,
            )
        except ClientError as exc:
            if http_status(exc) == 412:
                created = False
            elif error_code(exc) == "NoSuchUpload" and store._head(state.target) is not None:
                pass  # an earlier commit completed it and was stopped before cleaning up
            elif error_code(exc) in ("InvalidPart", "InvalidPartOrder", "NoSuchUpload"):
                raise BlobIntegrityError(
                    f"staged parts are missing or were overwritten ({error_code(exc)})"
                ) from None
            else:
                raise
        if state.target != final:
            if store._head(final) is None:
                store._s3.copy({"Bucket": store.bucket, "Key": state.target}, store.bucket, final)
            else:
                created = False
        return created

    def _read_carry(self, state: StageState) -> memoryview:
        buffer = memoryview(bytearray(state.carry_size))
        read_carry(self.store, state.carry, buffer)
        return buffer

    def discard(self, upload_key: str, *, aborting: bool = True) -> None:
        """Abort the upload's multipart upload and delete every object of its staging."""
        store = self.store
        prefix = store._stage_prefix(upload_key)
        if aborting:
            state = self.tip(upload_key)[1]
            if state is not None and state.upload_id is not None:
                self.abort(state.target, state.upload_id)
        keys = [obj["Key"] for obj in store._list(prefix)]
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            with store._errors("discarding staged chunks"):
                store._meta.delete_objects(
                    Bucket=store.bucket, Delete={"Objects": batch, "Quiet": True}
                )

    def abort(self, key: str, upload_id: str) -> None:
        try:
            with self.store._errors("aborting a multipart upload"):
                self.store._meta.abort_multipart_upload(
                    Bucket=self.store.bucket, Key=key, UploadId=upload_id
                )
        except ClientError as exc:
            if error_code(exc) != "NoSuchUpload" and http_status(exc) != 404:
                raise


class _PartSender:
    """Fills part-sized buffers from a request body and uploads each full one in a thread."""

    def __init__(self, store: S3BlobStore, state: StageState) -> None:
        self.store = store
        self.state = state
        self.part_size = store.part_size
        self._free: queue.Queue[memoryview] = queue.Queue()
        for _ in range(BUFFERS):
            self._free.put(memoryview(bytearray(self.part_size)))
        self._pool = ThreadPoolExecutor(max_workers=BUFFERS, thread_name_prefix="s3-part")
        self._pending: list[Future[None]] = []

    def __enter__(self) -> _PartSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def receive(
        self, stream: BinaryIO, length: int | None, hasher: ResumableSha256
    ) -> tuple[int, memoryview | None]:
        """Read the chunk; return its size and the bytes left over for the carry."""
        limit = MAX_PUT + 1 if length is None else length
        carry = self.state.carry_size  # bytes at the front of the next part, fetched when due
        buffer, filled, written = self._free.get(), carry, 0
        while True:
            room = min(self.part_size - filled, limit - written)
            n = fill(stream, buffer[filled : filled + room]) if room > 0 else 0
            hasher.update(buffer[filled : filled + n])
            filled, written = filled + n, written + n
            if written > MAX_PUT:
                raise ValueError(f"chunk larger than {MAX_PUT} bytes, the most one S3 PUT takes")
            if filled < self.part_size:
                break
            self._send(buffer, carry)
            buffer, filled, carry = self._free.get(), 0, 0
        if filled - carry == 0 and carry:  # nothing new: the carry stays as it was
            self._free.put(buffer)
            return written, None
        if filled >= MIN_PART:
            self._send(buffer[:filled], carry)
            return written, None
        if not carry:
            self.state.carry = []
        return written, buffer[carry:filled]

    def _send(self, view: memoryview, carry: int) -> None:
        for future in self._pending:  # stop reading the body once a part has failed
            if future.done():
                future.result()
        if carry:
            read_carry(self.store, self.state.carry, view[:carry])
            self.state.carry = []
        store, state = self.store, self.state
        if state.upload_id is None:
            created = store._s3.create_multipart_upload(Bucket=store.bucket, Key=state.target)
            state.upload_id = created["UploadId"]
        number = len(state.parts) + 1
        part: dict[str, Any] = {"PartNumber": number}
        state.parts.append(part)
        self._pending.append(self._pool.submit(self._upload, view, part))

    def _upload(self, view: memoryview, part: dict[str, Any]) -> None:
        store, state = self.store, self.state
        try:
            with store._errors("uploading a part"):
                answer = store._s3.upload_part(
                    Bucket=store.bucket,
                    Key=state.target,
                    UploadId=state.upload_id,
                    PartNumber=part["PartNumber"],
                    Body=ViewReader(view),
                    ContentLength=len(view),
                )
            part["ETag"] = answer["ETag"]
        finally:
            self._free.put(memoryview(view.obj) if isinstance(view.obj, bytearray) else view)

    def wait(self) -> None:
        """Every part is uploaded (or the first failure is raised)."""
        for future in self._pending:
            future.result()


def read_carry(store: S3BlobStore, carry: list[list[Any]], view: memoryview) -> None:
    """Fill ``view`` with the carry objects' bytes, in order."""
    filled = 0
    for key, size in carry:
        body = store._s3.get_object(Bucket=store.bucket, Key=key)["Body"]
        n = fill(body, view[filled : filled + int(size)])
        body.close()
        if n != int(size):
            raise BlobIntegrityError(f"staged bytes {key} are shorter than recorded")
        filled += n
