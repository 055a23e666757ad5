"""Parallel, resumable, verified downloads of a version's blobs into the cache.

Each blob streams into ``incomplete/<sha256>.part`` (under a ``filelock`` on
``<sha256>.part.lock``, so two processes never append to the same file), hashing every
byte in the same pass. A later run - even after the process was killed - re-hashes the
bytes it already has and asks for the rest with ``Range: bytes=N-``. Only a file whose
size and sha256 match the signed manifest is moved into ``blobs/``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any
from urllib.parse import quote

from filelock import FileLock

from client.cache import Cache
from client.errors import HashMismatch, IntegrityError, RegistryClientError
from client.http import BodyStream, ConnectionInterrupted, RegistryHTTP
from client.manifest import ManifestFile
from client.receive import BufferPool, receive

REHASH_SIZE = 8 * 1024 * 1024
# Each worker also runs a hashing helper: two per core is plenty, eight at most (like the HF hub).
DEFAULT_WORKERS = min(8, 2 * (os.cpu_count() or 2))


class Cancelled(RegistryClientError):
    """Another file failed; this one stopped early (its partial file is kept for resuming)."""


class ByteProgress:
    """One progress bar for all bytes of a pull (tqdm), or nothing with ``quiet``."""

    def __init__(self, total: int, initial: int, *, description: str, quiet: bool) -> None:
        self.lock = threading.Lock()
        self.bar: Any = None
        if not quiet:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total,
                initial=initial,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=description,
                dynamic_ncols=True,
                leave=True,
            )

    def update(self, count: int) -> None:
        if self.bar is not None and count:
            with self.lock:
                self.bar.update(count)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Downloader:
    """Fetches blobs for one version from ``/{repo}/resolve/{commit}/{path}``."""

    def __init__(self, http: RegistryHTTP, cache: Cache, *, workers: int = DEFAULT_WORKERS) -> None:
        self.http = http
        self.cache = cache
        self.workers = max(1, workers)
        self.cancel = threading.Event()
        self._buffers = BufferPool()

    def fetch_all(
        self, repo: str, commit: str, files: Sequence[ManifestFile], *, quiet: bool
    ) -> int:
        """Download every blob not yet in the cache; returns the bytes fetched over HTTP."""
        wanted: dict[str, ManifestFile] = {}
        for file in files:
            if not self.cache.has_blob(file.sha256, file.size):
                wanted.setdefault(file.sha256, file)
        todo = sorted(wanted.values(), key=lambda f: f.size, reverse=True)
        if not todo:
            return 0
        # The smallest file goes first, alone: a refusal (access, withdrawal) then arrives
        # once, with the registry's full explanation, before any progress bar is drawn.
        probe = todo.pop()
        fetched = [
            self.fetch_blob(repo, commit, probe, ByteProgress(0, 0, description="", quiet=True))
        ]
        if not todo:
            return fetched[0]
        total = sum(f.size for f in files)
        have = total - sum(f.size for f in todo)
        have += sum(self._partial_size(f) for f in todo)
        progress = ByteProgress(total, have, description=f"{repo}", quiet=quiet)
        lock = threading.Lock()

        def run(file: ManifestFile) -> None:
            got = self.fetch_blob(repo, commit, file, progress)
            with lock:
                fetched[0] += got

        try:
            with ThreadPoolExecutor(max_workers=min(self.workers, len(todo))) as pool:
                futures = [pool.submit(run, f) for f in todo]
                try:
                    done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                except BaseException:
                    self.cancel.set()
                    raise
                errors = [f.exception() for f in done if f.exception() is not None]
                if errors:
                    self.cancel.set()
                    wait(futures)
                    raise _most_important(
                        [f.exception() for f in futures if f.exception() is not None]
                    )
        finally:
            progress.close()
        return fetched[0]

    def _partial_size(self, file: ManifestFile) -> int:
        try:
            size = self.cache.partial_path(file.sha256).stat().st_size
        except FileNotFoundError:
            return 0
        return size if size <= file.size else 0

    def fetch_blob(self, repo: str, commit: str, file: ManifestFile, progress: ByteProgress) -> int:
        """One blob: resume its partial file, stream the rest, verify, install."""
        partial = self.cache.partial_path(file.sha256)
        partial.parent.mkdir(parents=True, exist_ok=True)
        url = f"/{repo}/resolve/{commit}/{quote(file.path, safe='/')}"
        fetched = 0
        retry = self.http.retry
        # filelock: an OS lock on every platform (fcntl alone left Windows without one).
        with FileLock(f"{partial}.lock"), open(partial, "a+b", buffering=0) as handle:
            if self.cache.has_blob(file.sha256, file.size):
                return 0  # another process finished it while we waited for the lock
            restarted = False
            for attempt in range(1, retry.attempts + 1):
                try:
                    got, digest = self._stream(handle, url, file, progress)
                    fetched += got
                except ConnectionInterrupted:
                    if attempt == retry.attempts or self.cancel.is_set():
                        raise
                    retry.wait(attempt)
                    continue
                if digest == file.sha256:
                    break
                on_disk = os.fstat(handle.fileno()).st_size
                _truncate(handle)
                progress.update(-on_disk)
                if on_disk != got and not restarted:
                    # A damaged partial file from an earlier run: start this blob afresh once.
                    restarted = True
                    continue
                raise HashMismatch(
                    f"{repo}@{commit}: {file.path} does not match the signed manifest (sha256 "
                    f"{digest}, expected {file.sha256}). The registry's copy may be corrupted; "
                    "nothing was stored."
                )
            self.cache.install_blob(partial, file.sha256)
        return fetched

    def _stream(
        self, handle: Any, url: str, file: ManifestFile, progress: ByteProgress
    ) -> tuple[int, str]:
        """Hash what is on disk, fetch the rest; returns (bytes fetched, sha256 of all)."""
        fd = handle.fileno()
        offset = os.fstat(fd).st_size
        if offset > file.size:
            _truncate(handle)
            offset = 0
        hasher = _rehash(handle, offset)
        if offset == file.size:
            return 0, hasher.hexdigest()
        with self.http.open_body(url, start=offset) as body:
            _check_etag(body, file)
            if offset and body.status != 206:
                progress.update(-offset)
                _truncate(handle)
                offset, hasher = 0, hashlib.sha256()
            elif offset and not (body.content_range or "").startswith(f"bytes {offset}-"):
                raise IntegrityError(f"The registry answered {url} with the wrong byte range")
            expected = file.size - offset
            fetched = receive(
                body,
                fd,
                hasher,
                expected,
                pool=self._buffers,
                on_bytes=progress.update,
                cancelled=self.cancel.is_set,
            )
            if self.cancel.is_set():
                raise Cancelled("stopped because another file failed")
            if fetched < expected:
                raise ConnectionInterrupted(
                    f"connection closed after {offset + fetched} of {file.size} bytes"
                )
        return fetched, hasher.hexdigest()


def _check_etag(body: BodyStream, file: ManifestFile) -> None:
    etag = body.headers.get("X-Linked-Etag") or body.headers.get("Etag") or ""
    etag = etag.removeprefix("W/").strip('"')
    if etag and len(etag) == 64 and etag != file.sha256:
        raise HashMismatch(
            f"The registry serves {file.path} as sha256 {etag}, but the signed manifest says "
            f"{file.sha256}; refusing it."
        )


def _rehash(handle: Any, length: int) -> Any:
    """sha256 of the first ``length`` bytes already on disk (appends still go to the end)."""
    hasher = hashlib.sha256()
    if length == 0:
        return hasher
    buffer = memoryview(bytearray(min(REHASH_SIZE, length)))
    handle.seek(0)
    position = 0
    while position < length:
        count = handle.readinto(buffer[: min(REHASH_SIZE, length - position)])
        if not count:
            break
        hasher.update(buffer[:count])
        position += count
    return hasher


def _truncate(handle: Any) -> None:
    handle.truncate(0)


def _most_important(errors: list[BaseException | None]) -> BaseException:
    """Report an integrity failure before a network hiccup, and never a mere cancellation."""
    real = [e for e in errors if e is not None and not isinstance(e, Cancelled)]
    for error in real:
        if isinstance(error, IntegrityError):
            return error
    return real[0] if real else errors[0] or RegistryClientError("download failed")


def partial_files(cache_root: Path) -> list[Path]:
    """Partial downloads currently in the cache (for tests and housekeeping)."""
    folder = Path(cache_root) / "incomplete"
    return sorted(folder.glob("*.part")) if folder.is_dir() else []
