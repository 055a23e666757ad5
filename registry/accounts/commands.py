"""``registry-server create-admin EMAIL`` (create or promote a registry administrator) and
``registry-server check-addresses`` (accounts whose addresses collide)."""

from __future__ import annotations

import sys

import click
from sqlalchemy import select

from registry.accounts.collisions import report_addresses
from registry.accounts.institutions import update_user
from registry.accounts.services import find_user_by_email, register_user
from registry.accounts.verification import mark_verified
from registry.commands import open_registry
from registry.errors import RegistryError
from registry.models import User
from registry.unit_of_work import unit_of_work


@click.command("create-admin")
@click.argument("email")
@click.option("--name", default="", help="Display name (defaults to the email's local part)")
def create_admin(email: str, name: str) -> None:
    """Create a registry admin; the password is read from stdin, or prompted for on a TTY."""
    registry = open_registry()
    with unit_of_work(registry.sessions) as db:
        existing = find_user_by_email(db, email)
        try:
            if existing is not None:
                update_user(
                    db, existing, is_registry_admin=True, actor=existing, now=registry.now()
                )
                click.echo(f"{existing.email} is now a registry admin")
                return
            password = _read_password()
            user = register_user(
                db,
                email=email,
                password=password,
                display_name=name,
                accept_terms=True,
                is_registry_admin=True,
                now=registry.now(),
            )
            # The operator typed the address on the server: it needs no mailed proof.
            mark_verified(db, user, actor=None, now=registry.now())
        except RegistryError as error:
            raise click.ClickException(error.message) from None
        click.echo(f"created registry admin {user.email}")


def _read_password() -> str:
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise click.ClickException("no password on stdin (pipe it in, or run on a terminal)")
    return line


@click.command("check-addresses")
def check_addresses() -> None:
    """List accounts whose addresses collide canonically or hold refused characters (exit 1)."""
    registry = open_registry()
    with unit_of_work(registry.sessions) as db:
        report = report_addresses(db.execute(select(User.id, User.email)).tuples())
    for line in report.lines():
        click.echo(line)
    if report.collisions or report.refused:
        sys.exit(1)
    click.echo("no colliding or refused addresses")
