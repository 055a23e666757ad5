"""The web UI: server-rendered pages over the registry's services (blueprint ``web``).

Register it with ``app.register_blueprint(bp)``; the security setup (CSRF, headers) and the
template helpers attach themselves to the app when the blueprint is registered.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("web", __name__, template_folder="templates")


@bp.record_once
def _setup(state) -> None:  # type: ignore[no-untyped-def]
    from registry.web import security, templating

    security.init_app(state.app)
    templating.init_app(state.app)


# Imported for their routes; each module is one area of the UI.
from registry.web import (  # noqa: E402, F401
    account,
    admin,
    assets,
    audit,
    browse,
    credentials,
    errors,
    people,
    requests,
    upload,
)
