"""How fast the background task of one serve process empties a mail backlog, same run.

A withdrawal mails every downloader in one transaction; the serve process's background
thread then delivers the outbox to a real SMTP server on loopback (aiosmtpd). Compared:
the task as it was (one batch of ``BATCH`` every 3 s tick: ``deliver_due``) and as it is
(``deliver_backlog``: batch after batch while batches come back full, within the time
budget). Prints seconds until the last mail arrived and mails/s per round, then medians
and the median of per-round ratios. SQLite in a temporary folder unless --database-url.

    .venv/bin/python -m benchmarks.outbox --mails 300 --rounds 3
"""

from __future__ import annotations

import argparse
import email
import email.policy
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from benchmarks.common import free_port
from registry import background
from registry.config import Settings
from registry.context import build_registry
from registry.db import Base, make_engine
from registry.mail.outbox import enqueue_mail
from registry.mail.site import Site
from registry.mail.worker import deliver_backlog, deliver_due
from registry.models import AuditHead
from registry.unit_of_work import unit_of_work


class Count:
    def __init__(self) -> None:
        self.received = 0
        self.last = 0.0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received += 1
        self.last = time.monotonic()
        return "250 OK"


def one_round(task: Any, mails: int, folder: Path, database_url: str | None) -> float:
    url = database_url or f"sqlite:///{folder / 'registry.db'}"
    engine = make_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(AuditHead.__table__.insert().values(id=1, seq=0, hash="0" * 64))
    engine.dispose()
    counter, port = Count(), free_port()
    smtp = Controller(counter, hostname="127.0.0.1", port=port)
    smtp.start()
    settings = Settings.from_env(
        {}, instance_path=folder / "instance", database_url=url,
        secret_key="benchmark-secret-key-0123456789", smtp_url=f"smtp://127.0.0.1:{port}",
    )  # fmt: skip
    registry = build_registry(settings)
    with unit_of_work(registry.sessions) as db:
        for i in range(mails):
            enqueue_mail(
                db, Site.of(settings), to=f"reader{i}@uni.example", subject="Withdrawn",
                text="A version you downloaded was withdrawn.", topic="bench", now=registry.now(),
            )  # fmt: skip
    started = time.monotonic()
    runner = background.start(registry, [background.Task("mail", 3.0, task)])
    try:
        while counter.received < mails and time.monotonic() - started < 600:
            time.sleep(0.05)
    finally:
        runner.stop(timeout=15)
        smtp.stop()
        registry.engine.dispose()
    if counter.received < mails:
        raise RuntimeError(f"only {counter.received} of {mails} mails arrived")
    return counter.last - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    tasks = {"one batch per tick (before)": deliver_due, "deliver_backlog (now)": deliver_backlog}
    results: dict[str, list[float]] = {name: [] for name in tasks}
    for round_ in range(1, args.rounds + 1):
        for name, task in tasks.items():
            with tempfile.TemporaryDirectory() as folder:
                seconds = one_round(task, args.mails, Path(folder), args.database_url)
            results[name].append(seconds)
            print(f"round {round_}: {name}: {seconds:.1f} s, {args.mails / seconds:.0f} mails/s")
    before, now = (results[name] for name in tasks)
    ratios = [b / n for b, n in zip(before, now, strict=True)]
    print(
        f"{args.mails} mails: median {statistics.median(before):.1f} s before, "
        f"{statistics.median(now):.1f} s now; median ratio {statistics.median(ratios):.1f}x"
    )


if __name__ == "__main__":
    main()
