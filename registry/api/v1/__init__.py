"""The registry's own JSON API under ``/api/v1``; each module adds its routes to ``bp``."""

from flask import Blueprint

bp = Blueprint("v1", __name__, url_prefix="/api/v1")

# Imported for their routes; each module belongs to one part of the registry.
from registry.api.v1 import (  # noqa: E402, F401
    access_requests,
    accounts,
    audit,
    credentials,
    models,
    signing,
    system,
    uploads,
)
