"""The registry's own JSON API under ``/api/v1`` (``routes.bp``; one module per domain)."""
