"""``registry-server audit verify`` and ``registry-server audit export``."""

from __future__ import annotations

import datetime as dt
import json
import sys

import click
from sqlalchemy import func, select

from registry.audit.export import events_csv
from registry.audit.queries import EventFilter, event_dict, list_events
from registry.audit.services import verify_chain
from registry.commands import open_registry
from registry.models import AuditEvent


@click.group()
def audit() -> None:
    """Check and export the hash-chained audit log."""


@audit.command()
def verify() -> None:
    """Walk the whole chain; exit 1 and name every edited, inserted or deleted event."""
    registry = open_registry()
    with registry.sessions() as db:
        problems = verify_chain(db)
        count = db.scalar(_count_query()) or 0
    if problems:
        for problem in problems:
            click.echo(f"TAMPERED {problem}", err=True)
        raise click.ClickException(f"audit chain verification failed: {len(problems)} problem(s)")
    click.echo(f"audit chain intact: {count} events")


def _count_query():  # type: ignore[no-untyped-def]
    return select(func.count()).select_from(AuditEvent)


@audit.command()
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="jsonl")
@click.option("--action", default=None, help="A tag (version:download) or prefix (version:)")
@click.option("--actor", default=None, help="Email or user id")
@click.option("--since", default=None, help="ISO date or date-time (UTC)")
@click.option("--until", default=None, help="ISO date or date-time (UTC), exclusive")
def export(
    fmt: str, action: str | None, actor: str | None, since: str | None, until: str | None
) -> None:
    """Write events to stdout in chain order."""
    filters = EventFilter(actor=actor, action=action, since=_when(since), until=_when(until))
    registry = open_registry()
    out = sys.stdout
    with registry.sessions() as db:
        after = 0
        if fmt == "csv":
            out.write("".join(events_csv([])))
        while batch := list_events(db, filters, limit=1000, after_seq=after):
            if fmt == "csv":
                out.write("".join(events_csv(batch, with_header=False)))
            else:
                for event in batch:
                    out.write(json.dumps(event_dict(event), sort_keys=True) + "\n")
            after = batch[-1].seq
            db.expunge_all()


def _when(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO date or date-time") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
