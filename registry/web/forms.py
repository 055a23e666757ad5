"""Reading form posts and turning service errors into messages beside the fields."""

from __future__ import annotations

import dataclasses
import re
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


def form_errors(
    error: RegistryError,
    *,
    aliases: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> FormErrors:
    """Problems from a service (the one ``{field, problem}`` shape) per form field,
    each said in one voice (see ``beside_field``); ``labels`` names fields in plain words."""
    aliases = aliases or {}
    labels = labels or {}
    fields: dict[str, str] = {}
    unplaced: list[str] = []
    for problem in error.details.get("problems") or []:
        if not isinstance(problem, dict):
            unplaced.append(str(problem))
            continue
        name = str(problem.get("field") or "")
        text = str(problem.get("problem") or problem.get("message") or "")
        name = aliases.get(name, name)
        if name:
            sentence = beside_field(text, labels)
            fields[name] = f"{fields[name]} {sentence}" if name in fields else sentence
        else:
            unplaced.append(text)
    if fields and not unplaced:
        summary = "Please correct the marked fields."
    else:
        summary = " ".join(unplaced) if unplaced else error.message
    return FormErrors(summary, fields)


def beside_field(text: str, labels: dict[str, str] | None = None) -> str:
    """A service's problem as a sentence shown under its field: the field is named by its
    label just above, so the sentence says what to do ("This is required.", "Tick this box
    to continue."), and other fields it mentions are named by their labels too."""
    text = text.strip()
    if text == "is required":
        return "This is required."
    if text.startswith("must be checked"):
        return "Tick this box to continue."
    for name, label in (labels or {}).items():
        text = re.sub(rf"(?<![\w.]){re.escape(name)}(?![\w])", label.lower(), text)
    if text.startswith(("is ", "must ", "are ")):
        text = f"This {text}"
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "?", "!")) else f"{text}."


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
