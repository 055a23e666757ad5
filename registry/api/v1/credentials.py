"""Routes: credentials (filled in by its part of the registry)."""

from registry.api.v1 import bp  # noqa: F401
