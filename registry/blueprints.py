"""Registration of the blueprints beyond the core API (web UI, publishing, accounts)."""

from __future__ import annotations

from flask import Flask


def register_all(app: Flask) -> None:
    """Attach every optional blueprint; each part adds its line here."""
    from registry.web import bp as web_bp

    app.register_blueprint(web_bp)
