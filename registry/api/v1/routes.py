"""The ``/api/v1`` blueprint with every module's routes attached."""

# Imported for their routes; each module belongs to one part of the registry.
from registry.api.v1 import (  # noqa: F401
    access_requests,
    accounts,
    audit,
    credentials,
    identity,
    models,
    notifications,
    outbox,
    queues,
    signing,
    system,
    uploads,
    webhooks,
)
from registry.api.v1.blueprint import bp

__all__ = ["bp"]
