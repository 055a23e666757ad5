"""Readiness: is each backend answering, within a fixed deadline whatever hangs?

Each check runs on its own daemon thread with its own connection, so a backend that
stopped answering costs the caller the deadline, not the backend's timeouts; the thread
itself ends when the backend's own timeouts fire.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable

from limits.storage import MemoryStorage, Storage
from sqlalchemy import func, select, text

from registry.context import Registry
from registry.models import AuditCheckpoint, AuditEvent

log = logging.getLogger(__name__)
DEADLINE = 1.5  # seconds for all checks together; /api/v1/health answers within 2 s


@dataclasses.dataclass
class BackendStatus:
    name: str
    ok: bool = False
    detail: str = ""
    ms: int = 0

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def check_backends(
    registry: Registry, deadline: float = DEADLINE, *, ratelimit: Storage | None = None
) -> list[BackendStatus]:
    """Database, blob storage and the rate-limit store (``ratelimit``, when it is a server
    such as Redis rather than memory), checked at once; a check still running at the
    deadline is reported as not answering."""
    checks: dict[str, Callable[[], str]] = {
        "database": lambda: _database(registry),
        "storage": lambda: _storage(registry),
    }
    if ratelimit is not None and not isinstance(ratelimit, MemoryStorage):
        checks["ratelimit"] = lambda: _ratelimit(ratelimit)
    results = {name: BackendStatus(name) for name in checks}
    threads = []
    for name, check in checks.items():
        thread = threading.Thread(
            target=_run, args=(check, results[name]), name=f"health-{name}", daemon=True
        )
        thread.start()
        threads.append((name, thread))
    end = time.monotonic() + deadline
    for name, thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
        if thread.is_alive():
            results[name] = BackendStatus(name, False, f"no answer within {deadline:g} s")
    return list(results.values())


def _run(check: Callable[[], str], status: BackendStatus) -> None:
    start = time.monotonic()
    try:
        status.detail = check()
        status.ok = True
    except Exception as error:  # any failure is the answer: logged in full, named briefly
        log.warning("health: %s failing: %s", status.name, error)
        status.detail = f"failing ({type(error).__name__})"  # no hosts or paths in answers
    status.ms = round((time.monotonic() - start) * 1000)


def _database(registry: Registry) -> str:
    with registry.sessions() as db:
        db.execute(text("SELECT 1"))
        pending = db.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.seq.is_(None))
        )
        sealed = db.scalar(select(func.max(AuditCheckpoint.size))) or 0
    return f"audit log: {sealed} sealed, {pending} pending"


def _storage(registry: Registry) -> str:
    registry.blobs.check_health()
    return type(registry.blobs).__name__


def _ratelimit(store: Storage) -> str:
    # The limiter's own connections and timeouts (registry.ratelimit.REDIS_TIMEOUTS).
    if not store.check():
        raise ConnectionError("the rate-limit store did not answer")
    return type(store).__name__
