"""The form a model asks requesters to fill in (``Model.access_fields``), and its checks.

Each field is ``{"name", "label", "type", "required", "options"}``, like Hugging Face's
gated-model fields; types are ``text``, ``textarea``, ``checkbox``, ``select`` and ``date``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from registry.accounts.validation import Problems

FIELD_TYPES = ("text", "textarea", "checkbox", "select", "date")
MAX_TEXT = {"text": 300, "textarea": 5000}


MAX_FIELDS = 50
MAX_OPTIONS = 100


def check_definitions(definitions: Any) -> list[str]:
    """Problems with a model's field definitions (checked when the model is created)."""
    if not isinstance(definitions, list):
        return ["access_fields must be a list"]
    if len(definitions) > MAX_FIELDS:
        return [f"access_fields has {len(definitions)} fields; the limit is {MAX_FIELDS}"]
    problems, names = [], set()
    for index, item in enumerate(definitions):
        where = f"access_fields[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            problems.append(f"{where} needs a string 'name'")
            continue
        if not item["name"].strip() or len(item["name"]) > 100:
            problems.append(f"{where}: 'name' must be 1 to 100 characters")
        if item["name"] in names:
            problems.append(f"{where}: duplicate name {item['name']!r}")
        names.add(item["name"])
        kind = item.get("type", "text")
        if kind not in FIELD_TYPES:
            problems.append(f"{where}: type must be one of {', '.join(FIELD_TYPES)}")
        if "label" in item and not isinstance(item["label"], str):
            problems.append(f"{where}: 'label' must be a string")
        if "required" in item and not isinstance(item["required"], bool):
            problems.append(f"{where}: 'required' must be true or false")
        options = item.get("options")
        if kind == "select":
            if (
                not isinstance(options, list)
                or not 0 < len(options) <= MAX_OPTIONS
                or not all(isinstance(o, str) for o in options)
            ):
                problems.append(
                    f"{where}: a select needs 'options', a list of 1 to {MAX_OPTIONS} strings"
                )
        elif options is not None:
            problems.append(f"{where}: only a select has 'options'")
    return problems


def check_new_model(definitions: Any, dua: str | None, known_duas: Collection[str]) -> None:
    """A new model's request form and DUA, refused with every problem before it is saved."""
    problems = Problems()
    for problem in check_definitions(definitions):
        problems.add("access_fields", problem.removeprefix("access_fields").lstrip(": "))
    if dua is not None and dua not in known_duas:
        choices = ", ".join(sorted(known_duas)) or "none are declared"
        problems.add("dua", f"{dua!r} is not a DUA of this registry ({choices})")
    problems.raise_if_any("Cannot create the model")


def clean_answers(definitions: list[dict[str, Any]], answers: Any) -> dict[str, Any]:
    """The requester's answers, checked against the model's fields; raises ValidationFailed."""
    problems = Problems()
    if not isinstance(answers, dict):
        problems.add("fields", "must be an object of field name to answer")
        problems.raise_if_any("Cannot request access")
    known = {d["name"]: d for d in definitions if isinstance(d, dict) and "name" in d}
    for name in answers:
        if name not in known:
            problems.add(f"fields.{name}", "is not a field of this model's request form")
    cleaned: dict[str, Any] = {}
    for name, spec in known.items():
        kind = spec.get("type", "text")
        required = spec.get("required", True)
        value = answers.get(name)
        key = f"fields.{name}"
        if kind == "checkbox":
            if value not in (None, True, False):
                problems.add(key, "must be true or false")
            elif required and value is not True:
                problems.add(key, f"must be checked ({spec.get('label', name)})")
            cleaned[name] = value is True
        elif kind == "select":
            options = [str(o) for o in spec.get("options", [])]
            if value is None and not required:
                continue
            if value not in options:
                problems.add(key, f"must be one of {', '.join(options)}")
            cleaned[name] = value
        elif kind == "date":
            if value in (None, "") and not required:
                continue
            try:
                cleaned[name] = dt.date.fromisoformat(str(value)).isoformat()
            except ValueError:
                problems.add(key, "must be a date like 2026-03-02")
        else:
            text = problems.text(key, value, max_length=MAX_TEXT.get(kind, 300), required=required)
            if text:
                cleaned[name] = text
    problems.raise_if_any("Cannot request access")
    return cleaned
