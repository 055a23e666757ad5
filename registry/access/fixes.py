"""Where a user fixes each missing requirement: web-UI paths (see docs/architecture.md)."""

from __future__ import annotations

LOGIN = "/login"
REGISTER = "/register"
TERMS = "/account/terms"
CREDENTIALS = "/account/credentials"
TRAININGS = "/account/trainings"
TOKENS = "/account/tokens"
VERIFY_EMAIL = "/account/verify"


def dua_url(dua_id: str) -> str:
    """The page where DUA ``dua_id`` is read and signed."""
    return f"/duas/{dua_id}"


def request_access_url(repo_id: str) -> str:
    """The page where a user requests access to a contributor-review model."""
    return f"/models/{repo_id}/request-access"
