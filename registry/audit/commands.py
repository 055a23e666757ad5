"""``registry-server audit seal|verify|export|tags``."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import click

import client.merkle as merkle
from registry.audit.export import events_csv
from registry.audit.queries import EventFilter, event_dict, list_events
from registry.audit.sealer import SealRefused, seal_pending, witness_path
from registry.audit.tags import check_filter, tags_table
from registry.audit.verify import Witness, verify_log
from registry.commands import open_registry
from registry.publishing.signing import decode_public_key, key_id, public_raw

SHOWN_PROBLEMS = 50


@click.group()
def audit() -> None:
    """Seal, check and export the audit log."""


@audit.command()
@click.option("--batch", default=2000, show_default=True, help="Events per checkpoint")
def seal(batch: int) -> None:
    """Give pending events their place in the log and sign a checkpoint per batch.

    ``serve`` does this in the background; one process seals at a time."""
    registry = open_registry()
    total = 0
    checkpoints: list[int] = []
    try:
        while True:
            report = seal_pending(registry, batch=batch, budget=60.0)
            if not report.leader:
                raise click.ClickException(
                    "another process is sealing the audit log right now; try again shortly"
                )
            total += report.sealed
            checkpoints += report.checkpoints
            if not report.checkpoints:
                break
    except SealRefused as error:
        raise click.ClickException(f"sealing refused: {error}") from None
    if checkpoints:
        click.echo(
            f"sealed {total} event(s) into {len(checkpoints)} checkpoint(s), "
            f"up to {checkpoints[-1]}"
        )
    else:
        click.echo("nothing pending")


@audit.command()
@click.option(
    "--witness",
    "witness_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Checkpoints kept outside the database (registry-client audit-witness --export); "
    "repeatable",
)
@click.option(
    "--trust-key",
    "trust_keys",
    multiple=True,
    help="A base64 Ed25519 public key to accept for checkpoints (e.g. a retired "
    "REGISTRY_SIGNING_KEY); repeatable",
)
def verify(witness_files: tuple[Path, ...], trust_keys: tuple[str, ...]) -> None:
    """Check every sealed event against the signed checkpoints and the witnesses.

    Exit 1 naming the first event that no longer matches (and every other problem). The
    sealer's own witness file in the instance folder is always checked when present."""
    registry = open_registry()
    witnesses = [_read_witness(path) for path in witness_files]
    own = witness_path(registry.settings)
    if own.exists() and own not in witness_files:
        witnesses.append(_read_witness(own, name=f"the sealer's witness file {own}"))
    trusted = {}
    for text in trust_keys:
        try:
            trusted[key_id(public_raw(decode_public_key(text)))] = text.strip()
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--trust-key") from None
    with registry.sessions() as db:
        report = verify_log(db, registry.settings, witnesses, trusted_keys=trusted)
    if report.problems:
        for problem in report.problems[:SHOWN_PROBLEMS]:
            click.echo(f"TAMPERED {problem}", err=True)
        if len(report.problems) > SHOWN_PROBLEMS:
            click.echo(f"… and {len(report.problems) - SHOWN_PROBLEMS} more", err=True)
        first = report.first_mismatch
        where = f"; first event that no longer matches: {first}" if first else ""
        raise click.ClickException(
            f"audit log verification failed: {len(report.problems)} problem(s){where}"
        )
    click.echo(
        f"audit log intact: {report.sealed} events sealed under {report.checkpoints} signed "
        f"checkpoint(s), {report.witnessed} witnessed checkpoint(s) match, "
        f"{report.pending} pending"
    )


def _read_witness(path: Path, name: str | None = None) -> Witness:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        keys, records = merkle.parse_witness(document)
    except (OSError, ValueError) as error:
        raise click.BadParameter(f"{path}: {error}", param_hint="--witness") from None
    return Witness(name or f"witness {path.name}", keys, records)


@audit.command()
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="jsonl")
@click.option("--action", default=None, help="A tag (version:download) or prefix (version:)")
@click.option("--actor", default=None, help="Email or user id")
@click.option("--since", default=None, help="ISO date or date-time (UTC)")
@click.option("--until", default=None, help="ISO date or date-time (UTC), exclusive")
def export(
    fmt: str, action: str | None, actor: str | None, since: str | None, until: str | None
) -> None:
    """Write events to stdout in recorded order (pending ones have no seq yet)."""
    if action:
        try:
            check_filter(action)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--action") from None
    filters = EventFilter(actor=actor, action=action, since=_when(since), until=_when(until))
    registry = open_registry()
    out = sys.stdout
    with registry.sessions() as db:
        after = 0
        if fmt == "csv":
            out.write("".join(events_csv([])))
        while batch := list_events(db, filters, limit=1000, after_id=after):
            if fmt == "csv":
                out.write("".join(events_csv(batch, with_header=False)))
            else:
                for event in batch:
                    out.write(json.dumps(event_dict(event), sort_keys=True) + "\n")
            after = batch[-1].id
            db.expunge_all()


@audit.command()
def tags() -> None:
    """Print every event tag and what it records (the table in docs/audit.md)."""
    click.echo(tags_table(), nl=False)


def _when(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO date or date-time") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
