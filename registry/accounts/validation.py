"""Input checks shared by the account, credential and access-request services."""

from __future__ import annotations

from typing import Any

from client.shared.rules import ID_MAX
from registry.accounts.addresses import AddressRefused, normalize_email
from registry.errors import ValidationFailed

MAX_ID = ID_MAX  # database integer ids; larger path values cannot name a row


class Problems:
    """Collects every problem with an input, then raises them together."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, field: str, problem: str) -> None:
        self.items.append({"field": field, "problem": problem})

    def text(self, field: str, value: Any, *, max_length: int, required: bool = True) -> str:
        """A stripped string, or a recorded problem (and ``""``)."""
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.add(field, "is required")
            return ""
        if not isinstance(value, str):
            self.add(field, "must be a string")
            return ""
        value = value.strip()
        if len(value) > max_length:
            self.add(field, f"must be at most {max_length} characters")
        return value

    def email(self, field: str, value: Any) -> str:
        """The normalized address (``registry.accounts.addresses``), or a recorded problem."""
        email = self.text(field, value, max_length=320)
        if not email:
            return ""
        try:
            return normalize_email(email)
        except AddressRefused as refused:
            self.add(field, str(refused))
            return email.lower()

    def raise_if_any(self, what: str) -> None:
        if self.items:
            summary = "; ".join(f"{p['field']} {p['problem']}" for p in self.items)
            raise ValidationFailed(f"{what}: {summary}", details={"problems": self.items})
