"""The ``web`` blueprint with every page attached."""

# Imported for their routes; each module is one area of the UI.
from registry.web import (  # noqa: F401
    account,
    admin,
    assets,
    audit,
    browse,
    credentials,
    errors,
    identity,
    notifications,
    outbox,
    people,
    queues,
    requests,
    upload,
    webhooks,
)
from registry.web.blueprint import bp

__all__ = ["bp"]
