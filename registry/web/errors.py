"""Error pages for the web UI (called by the registry's one error handler)."""

from __future__ import annotations

from typing import Any

from flask import Response, g, redirect, render_template, request, url_for

CSRF_HINT = (
    "This form has expired or was not sent from this site. Go back, reload the page and try again."
)


def render_error_page(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> Response:
    """An HTML page that says what went wrong and, for denials, what to fix where."""
    details = details or {}
    if status == 401 and request.method in ("GET", "HEAD") and g.get("principal") is not None:
        return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
    if code in ("BadRequest", "CSRFError") and "CSRF" in message:
        message = CSRF_HINT
    body = render_template(
        "error.html",
        status=status,
        code=code,
        message=message,
        missing=details.get("missing") or [],
        problems=details.get("problems") or [],
        # The database may be what failed: do not ask it anything while rendering.
        minimal=status >= 500,
    )
    return Response(body, status=status, mimetype="text/html")
