"""``registry-server mail run|status``: the outbox worker and what waits in the outbox."""

from __future__ import annotations

import time

import click

from registry.commands import open_registry
from registry.mail.outbox import counts, list_messages
from registry.mail.worker import drain
from registry.notifications.scheduled import run_scheduled
from registry.unit_of_work import unit_of_work

SCHEDULE_EVERY = 600.0


@click.group()
def mail() -> None:
    """Outgoing mail and webhook deliveries."""


@mail.command("run")
@click.option(
    "--once", is_flag=True, help="Deliver everything due, queue expiries and digests, exit"
)
@click.option("--interval", default=3.0, show_default=True, help="Seconds between deliveries")
def run(once: bool, interval: float) -> None:
    """Deliver the outbox (serve does this too, in the background of every process)."""
    registry = open_registry()
    scheduled_at = 0.0
    while True:
        if time.monotonic() - scheduled_at >= SCHEDULE_EVERY or once:
            run_scheduled(registry)
            scheduled_at = time.monotonic()
        report = drain(registry)
        if once or report.sent or report.retrying or report.failed:
            click.echo(f"outbox: {report}")
        if once:
            return
        try:
            time.sleep(interval)
        except KeyboardInterrupt:
            return


@mail.command("status")
@click.option("--failed", is_flag=True, help="List the failed messages and why")
def status(failed: bool) -> None:
    """How many messages are queued, being sent, sent and failed."""
    registry = open_registry()
    with unit_of_work(registry.sessions) as db:
        found = counts(db)
        click.echo(", ".join(f"{count} {state}" for state, count in found.items()))
        if failed:
            for message in list_messages(db, status="failed", limit=1000):
                click.echo(
                    f"#{message.id} {message.kind} {message.topic} to {message.recipient}: "
                    f"{message.last_error}"
                )
