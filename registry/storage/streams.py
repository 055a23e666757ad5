"""Fixed-size streaming pieces shared by the stores: buffer filling, hashing, bounded readers."""

from __future__ import annotations

import hashlib
import io
import itertools
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

from registry.storage.base import BlobIntegrityError

READ_SIZE = 1024 * 1024  # one read from a caller's stream; memory never holds more per read


def fill(stream: BinaryIO, view: memoryview) -> int:
    """Read from ``stream`` until ``view`` is full or the stream ends; return bytes read."""
    readinto = getattr(stream, "readinto", None)
    filled = 0
    while filled < len(view):
        want = min(len(view) - filled, READ_SIZE)
        if readinto is not None:
            n = readinto(view[filled : filled + want])
        else:
            data = stream.read(want)
            n = len(data)
            view[filled : filled + n] = data
        if not n:
            break
        filled += n
    return filled


def pipelined_copy(stream: BinaryIO, target: BinaryIO, digest: ContentDigest) -> int:
    """Copy ``stream`` into ``target`` through ``digest``: while one buffer fills from the
    stream, the one before is hashed and the one before that written, each in its own thread
    (sha256, file writes and socket reads all release the GIL). Returns the bytes copied."""
    size = 2 * READ_SIZE
    buffers = [memoryview(bytearray(size)) for _ in range(3)]
    received = 0
    limit = None if digest.expected_size is None else digest.expected_size + 1
    pending: deque[tuple[Future[None], Future[Any]]] = deque()
    with ThreadPoolExecutor(1, "hash") as hasher, ThreadPoolExecutor(1, "write") as writer:
        try:
            for turn in itertools.count():
                while len(pending) >= len(buffers) - 1:  # the next buffer must be free
                    for job in pending.popleft():
                        job.result()
                view = buffers[turn % len(buffers)]
                room = size if limit is None else max(0, min(size, limit - received))
                n = fill(stream, view[:room]) if room else 0
                if not n:
                    break
                received += n
                pending.append(
                    (hasher.submit(digest.update, view[:n]), writer.submit(target.write, view[:n]))
                )
            while pending:
                for job in pending.popleft():
                    job.result()
        finally:
            for jobs in pending:
                for job in jobs:
                    job.cancel()
    return received


class ContentDigest:
    """Counts and hashes bytes as they stream past, enforcing an expected size on the way."""

    def __init__(self, expected_size: int | None = None) -> None:
        if expected_size is not None and expected_size < 0:
            raise ValueError(f"invalid expected size {expected_size}: must not be negative")
        self.expected_size = expected_size
        self.size = 0
        self._hash = hashlib.sha256()

    def room(self, capacity: int) -> int:
        """How much of a ``capacity``-byte buffer to fill next: one byte past the expected size
        at most, so an over-long stream is noticed without reading it to the end."""
        if self.expected_size is None:
            return capacity
        return max(0, min(capacity, self.expected_size + 1 - self.size))

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Hash and count ``data``; raise ``BlobIntegrityError`` once past the expected size."""
        self._hash.update(data)
        self.size += len(data)
        if self.expected_size is not None and self.size > self.expected_size:
            raise BlobIntegrityError(
                f"size mismatch: expected {self.expected_size} bytes, received more"
            )

    def verify(self, expected_sha256: str | None) -> str:
        """Return the hex digest after checking the expected size and sha256."""
        if self.expected_size is not None and self.size != self.expected_size:
            raise BlobIntegrityError(
                f"size mismatch: expected {self.expected_size} bytes, received {self.size}"
            )
        digest = self._hash.hexdigest()
        if expected_sha256 is not None and digest != expected_sha256:
            raise BlobIntegrityError(
                f"sha256 mismatch: expected {expected_sha256}, received {digest}"
            )
        return digest


class RangeReader(io.RawIOBase):
    """Reads at most ``length`` bytes from an already positioned binary file, then EOF."""

    def __init__(self, raw: BinaryIO, length: int) -> None:
        super().__init__()
        self._raw = raw
        self._remaining = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self._remaining)
        if want <= 0:
            return 0
        n = self._raw.readinto(memoryview(buffer)[:want])  # type: ignore[attr-defined]
        self._remaining -= n or 0
        return n or 0

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class ViewReader(io.RawIOBase):
    """A seekable reader over a memoryview, so HTTP clients can send a buffer without a copy."""

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view = view
        self._pos = 0

    def __len__(self) -> int:
        return len(self._view)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self._view[self._pos : self._pos + len(buffer)]
        memoryview(buffer)[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)
