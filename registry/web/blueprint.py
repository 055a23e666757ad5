"""The web UI's blueprint (``web``); the security setup and template helpers attach
themselves to the app when it is registered."""

from __future__ import annotations

from flask import Blueprint
from flask.blueprints import BlueprintSetupState

from registry.web import security, templating

bp = Blueprint("web", __name__, template_folder="templates")


@bp.record_once
def _setup(state: BlueprintSetupState) -> None:
    security.init_app(state.app)
    templating.init_app(state.app)
