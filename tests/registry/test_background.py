"""Background tasks beside serve: they run on their schedule, survive failures, stop fast."""

from __future__ import annotations

import threading
import time

from registry import background


def test_tasks_run_repeatedly_survive_a_failure_and_stop_promptly(registry) -> None:
    runs: list[str] = []
    first_failed = threading.Event()

    def flaky(_registry) -> None:
        runs.append("flaky")
        if not first_failed.is_set():
            first_failed.set()
            raise RuntimeError("the first run fails")

    def steady(reg) -> None:
        assert reg is registry
        runs.append("steady")

    runner = background.start(
        registry,
        [background.Task("flaky", 0.05, flaky), background.Task("steady", 0.05, steady)],
    )
    deadline = time.monotonic() + 5
    while runs.count("flaky") < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    runner.stop()
    assert time.monotonic() - started < 1.0
    assert not runner.thread.is_alive()
    assert runs.count("flaky") >= 3, "a failed run must not stop the task"
    assert runs.count("steady") >= 3
    settled = len(runs)
    time.sleep(0.2)
    assert len(runs) == settled, "nothing runs after stop()"
