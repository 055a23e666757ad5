"""Periodic work that ``registry-server serve`` runs beside the requests.

Each task is a function of the ``Registry`` run every ``every`` seconds on one daemon thread
per server process. Tasks must be safe to run in several processes at once (take a row lock
with ``SKIP LOCKED``, or an advisory lock for work that only one process may do) and must
return within a few seconds so that shutdown is prompt. A failing run is logged and retried
at the next tick; it never stops the thread or the server.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence

from registry.audit.sealer import background_seal
from registry.context import Registry
from registry.mail.transport import announce
from registry.mail.worker import deliver_backlog
from registry.notifications.scheduled import run_scheduled

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    every: float
    run: Callable[..., object]  # run(registry), or run(registry, stopping) if told to
    # A long task gets the runner's stop event and returns between deliveries once it is set.
    takes_stop: bool = False


# One line per task; each part of the registry that needs one adds it here.
TASKS: list[Task] = [
    Task("audit-seal", 0.5, background_seal),
    Task("mail", 3.0, deliver_backlog, takes_stop=True),  # the outbox: mail and webhooks
    Task("notifications", 600.0, run_scheduled),  # expiry warnings, reviewer digests
]


class Runner:
    """The background thread of one server process."""

    def __init__(self, registry: Registry, tasks: Sequence[Task]) -> None:
        self.registry = registry
        self.tasks = list(tasks)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="registry-background", daemon=True)

    def start(self) -> Runner:
        if self.tasks:
            self.thread.start()
        return self

    def stop(self, timeout: float = 3.0) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout)

    def _loop(self) -> None:
        due = {task.name: time.monotonic() for task in self.tasks}
        while not self.stopping.is_set():
            for task in self.tasks:
                if time.monotonic() < due[task.name]:
                    continue
                due[task.name] = time.monotonic() + task.every
                try:
                    if task.takes_stop:
                        task.run(self.registry, self.stopping)
                    else:
                        task.run(self.registry)
                except Exception:  # logged; the next tick tries again
                    log.exception("background task %s failed", task.name)
                if self.stopping.is_set():
                    return
            self.stopping.wait(max(0.05, min(due.values()) - time.monotonic()))


def start(registry: Registry, tasks: Sequence[Task] | None = None) -> Runner:
    """Start the background tasks for this process; ``stop()`` the result on shutdown."""
    announce(registry.settings)  # an offline registry's log says at once where mail goes
    return Runner(registry, TASKS if tasks is None else tasks).start()
