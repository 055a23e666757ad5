"""The blueprint of the registry's own JSON API under ``/api/v1``."""

from flask import Blueprint

bp = Blueprint("v1", __name__, url_prefix="/api/v1")
