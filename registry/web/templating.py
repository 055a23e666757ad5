"""Jinja filters and globals shared by every page."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from flask import Flask, g, url_for
from markupsafe import Markup, escape

from registry.context import current_registry
from registry.web.permissions import can, safe_fix_url

UNITS = ("B", "KB", "MB", "GB", "TB")


def filesize(size: int | None) -> str:
    """Decimal units, as file browsers show them (1.2 MB)."""
    if size is None:
        return ""
    value = float(size)
    for unit in UNITS:
        if value < 1000 or unit == UNITS[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if value else ""


def day(value: dt.date | dt.datetime | None) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        value = value.astimezone(dt.UTC).date()
    return value.isoformat()


def card_value(value: Any) -> str:
    """A front-matter value as plain text (lists joined, mappings as compact JSON)."""
    if isinstance(value, list):
        return ", ".join(card_value(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if value is None:
        return ""
    return str(value)


LABELS = {"dua": "DUA", "license": "Licence", "base_model": "Base model"}


def field_label(key: str) -> str:
    """A front-matter key as a label: ``out_of_scope_use`` → "Out of scope use"."""
    if key in LABELS:
        return LABELS[key]
    words = key.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:]


def viewer() -> Any:
    principal = g.get("principal")
    return principal.user if principal is not None else None


def asset(filename: str) -> str:
    return url_for("web.static", filename=filename)


def path_breaks(path: str) -> Markup:
    """A file path that a narrow screen wraps after a ``/``, not in the middle of a name."""
    return Markup("/<wbr>").join(escape(part) for part in str(path).split("/"))


def training_title(kind: str) -> str:
    """A training as the policy names it (``citi-dsor`` → "CITI Data or Specimens …")."""
    spec = current_registry().policy.policies.trainings.get(kind)
    return spec.title if spec is not None else kind


def dua_title(dua_id: str | None) -> str:
    """A DUA as the policy names it, with its version."""
    spec = current_registry().policy.policies.duas.get(dua_id or "")
    return spec.title if spec is not None else (dua_id or "")


def policy_duas() -> list[Any]:
    return current_registry().policy.duas()


def init_app(app: Flask) -> None:
    app.jinja_env.filters.update(
        filesize=filesize,
        when=when,
        day=day,
        card_value=card_value,
        field_label=field_label,
        training_title=training_title,
        dua_title=dua_title,
        path_breaks=path_breaks,
    )
    app.jinja_env.globals.update(
        viewer=viewer, can=can, asset=asset, safe_fix_url=safe_fix_url, policy_duas=policy_duas
    )
