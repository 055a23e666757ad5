"""What every ``registry-server`` command shares: the settings and the registry they build."""

from __future__ import annotations

import click

from registry.config import ConfigError, Settings
from registry.context import Registry, build_registry


def load_settings() -> Settings:
    """The settings from the environment; a bad value is a one-line error naming it."""
    try:
        return Settings.from_env()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


def open_registry() -> Registry:
    """The registry a command works on (commit its work with ``unit_of_work``)."""
    try:
        return build_registry(load_settings())
    except ConfigError as error:  # e.g. a malformed policy file: say which and why
        raise click.ClickException(str(error)) from None
