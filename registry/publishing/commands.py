"""``registry-server keys …``, ``registry-server gc`` and ``registry-server fsck``."""

from __future__ import annotations

import datetime as dt

import click

from registry.commands import open_registry
from registry.errors import RegistryError
from registry.publishing import signing
from registry.publishing.fsck import check_store
from registry.publishing.gc import collect_garbage
from registry.unit_of_work import unit_of_work


@click.group()
def keys() -> None:
    """The registry's Ed25519 manifest-signing keys."""


@keys.command("list")
def list_keys() -> None:
    """Show every key: id, public key, created, retired."""
    registry = open_registry()
    with unit_of_work(registry.sessions) as db:
        signing.load_signer(db, registry.settings, registry.now())
        for key in signing.list_keys(db):
            state = f"retired {key.retired_at:%Y-%m-%d}" if key.retired_at else "active"
            click.echo(f"{key.key_id}  {key.public_key}  {key.created_at:%Y-%m-%d}  {state}")


@keys.command()
def rotate() -> None:
    """Retire the active key and generate a new one; old public keys stay listed."""
    registry = open_registry()
    with unit_of_work(registry.sessions) as db:
        try:
            key = signing.rotate(db, registry.settings, registry.now())
        except RegistryError as error:
            raise click.ClickException(error.message) from None
        click.echo(f"active signing key is now {key.key_id}")


@keys.command()
def generate() -> None:
    """Print a new base64 seed for REGISTRY_SIGNING_KEY (nothing is stored)."""
    click.echo(signing.generate_seed())


@click.command()
@click.option("--dry-run", is_flag=True, help="Only report what would be removed")
@click.option("--grace-hours", type=int, default=None, help="Default: REGISTRY_GC_GRACE_HOURS")
def gc(dry_run: bool, grace_hours: int | None) -> None:
    """Expire abandoned upload sessions and delete blobs nothing refers to."""
    registry = open_registry()
    hours = registry.settings.gc_grace_hours if grace_hours is None else grace_hours
    with unit_of_work(registry.sessions) as db:
        report = collect_garbage(
            db, registry.blobs, now=registry.now(), grace=dt.timedelta(hours=hours), dry_run=dry_run
        )
    verb = "would remove" if dry_run else "removed"
    click.echo(
        f"{verb} {len(report.blobs_removed)} blob(s) ({report.bytes_freed} bytes), "
        f"{len(report.staging_removed)} staged upload(s), "
        f"{len(report.uploads_aborted)} incomplete multipart upload(s); expired "
        f"{len(report.expired_sessions)} session(s)"
    )


@click.command()
def fsck() -> None:
    """Re-hash every blob; exit 1 if any is corrupt or a referenced one is missing."""
    registry = open_registry()
    with unit_of_work(registry.sessions) as db:
        report = check_store(db, registry.blobs)
    for line in report.corrupt:
        click.echo(f"CORRUPT {line}", err=True)
    for line in report.missing:
        click.echo(f"MISSING {line}", err=True)
    summary = f"checked {report.checked} blob(s), {report.bytes_checked} bytes"
    if not report.ok:
        raise click.ClickException(
            f"{summary}: {len(report.corrupt)} corrupt, {len(report.missing)} missing"
        )
    click.echo(f"{summary}: all intact")
