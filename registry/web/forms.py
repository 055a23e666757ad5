"""Reading form posts and turning service errors into messages beside the fields."""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urlsplit

from flask import request

from registry.errors import RegistryError


@dataclasses.dataclass
class FormErrors:
    """A summary for the top of the form and a message per field name."""

    summary: str = ""
    fields: dict[str, str] = dataclasses.field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.summary or self.fields)

    def get(self, name: str) -> str:
        return self.fields.get(name, "")


def form_errors(error: RegistryError, *, aliases: dict[str, str] | None = None) -> FormErrors:
    """Problems from a service (``{field, problem}`` or ``{path, reason}``) per form field."""
    aliases = aliases or {}
    fields: dict[str, str] = {}
    unplaced: list[str] = []
    for problem in error.details.get("problems") or []:
        if not isinstance(problem, dict):
            unplaced.append(str(problem))
            continue
        name = str(problem.get("field") or problem.get("path") or "")
        text = str(problem.get("problem") or problem.get("reason") or problem.get("message") or "")
        name = aliases.get(name, name)
        if name:
            label = name.replace("_", " ")
            sentence = text if text[:1].isupper() else f"{label.capitalize()} {text}"
            fields[name] = f"{fields[name]} {sentence}" if name in fields else sentence
        else:
            unplaced.append(text)
    if fields and not unplaced:
        summary = "Please correct the marked fields."
    else:
        summary = " ".join(unplaced) if unplaced else error.message
    return FormErrors(summary, fields)


def text_field(name: str, limit: int = 10_000) -> str:
    return request.form.get(name, "")[:limit]


def checked(name: str) -> bool:
    return request.form.get(name) in ("yes", "on", "true", "1")


def form_values(*names: str) -> dict[str, Any]:
    """The posted values to put back into a form that failed."""
    return {name: request.form.get(name, "") for name in names}


def safe_next(target: str | None, default: str) -> str:
    """Redirect only to a path on this site (never to another host after login)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target:
        return default
    return target
