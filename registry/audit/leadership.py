"""Which process seals the audit log right now: at most one, whatever runs beside it.

PostgreSQL: ``pg_try_advisory_xact_lock`` inside the seal's transaction, released when it
commits or rolls back (a crashed sealer's connection drops it too). SQLite: an exclusive,
non-blocking ``flock`` on a file beside the database, held until the seal has committed;
SQLite databases live on one machine, so every process that can write one can see the lock.
Either way the log's unique ``seq`` and checkpoint ``size`` are the backstop: two sealers
that somehow overlapped could not both commit.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

# A fixed 63-bit number naming the sealer among the application's advisory locks.
SEALER_LOCK_ID = int.from_bytes(hashlib.sha256(b"roentgen-registry/audit-sealer").digest()[:8]) >> 1
_memory_lock = threading.Lock()


@contextlib.contextmanager
def sealer_leadership(database_url: str) -> Iterator[Callable[[Session], bool]]:
    """Yield ``lead(db)``: True when this process may seal in ``db``'s transaction.

    Open it around the seal's unit of work, so that on SQLite the lock outlives the commit.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        yield _advisory_lock
        return
    database = url.database or ""
    if not database or database == ":memory:":
        acquired = _memory_lock.acquire(blocking=False)
        try:
            yield lambda _db: acquired
        finally:
            if acquired:
                _memory_lock.release()
        return
    path = Path(f"{database}-audit-sealer.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            acquired = True
        except BlockingIOError:
            acquired = False
        yield lambda _db: acquired
    finally:
        os.close(fd)  # closing drops the flock


def _advisory_lock(db: Session) -> bool:
    return bool(db.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": SEALER_LOCK_ID}))
