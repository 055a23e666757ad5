"""The registry's error hierarchy. One handler (``registry.api.errors``) renders them.

Each error carries an HTTP status, a machine-readable ``code`` (sent as ``X-Error-Code``,
chosen to match the Hugging Face Hub where one exists) and a message that tells the user
what to fix.
"""

from __future__ import annotations

from typing import Any


class RegistryError(Exception):
    """``keep_changes``: the refusal itself is an outcome to commit (an audited failed login,
    a stored validation report); otherwise the request's transaction is rolled back."""

    status: int = 400
    code: str = "BadRequest"

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        keep_changes: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.headers = headers or {}
        self.keep_changes = keep_changes


class BadRequest(RegistryError):
    status, code = 400, "BadRequest"


class ValidationFailed(RegistryError):
    """Input failed validation; ``details["problems"]`` lists every problem found."""

    status, code = 422, "ValidationFailed"


class NotFound(RegistryError):
    status, code = 404, "NotFound"


class RepoNotFound(NotFound):
    code = "RepoNotFound"


class RevisionNotFound(NotFound):
    code = "RevisionNotFound"


class EntryNotFound(NotFound):
    code = "EntryNotFound"


class Unauthorized(RegistryError):
    status, code = 401, "Unauthorized"


class Forbidden(RegistryError):
    status, code = 403, "Forbidden"


class GatedRepo(RegistryError):
    """A model or version exists but the principal may not read it (yet)."""

    status, code = 403, "GatedRepo"


class VersionWithdrawn(RegistryError):
    status, code = 410, "VersionWithdrawn"


class Conflict(RegistryError):
    status, code = 409, "Conflict"


class RangeNotSatisfiable(RegistryError):
    status, code = 416, "RangeNotSatisfiable"


class PayloadTooLarge(RegistryError):
    status, code = 413, "PayloadTooLarge"


class TooManyRequests(RegistryError):
    status, code = 429, "TooManyRequests"


class ServiceUnavailable(RegistryError):
    status, code = 503, "ServiceUnavailable"


class InsufficientStorage(RegistryError):
    status, code = 507, "InsufficientStorage"
