"""What the browse page lists: models with their newest visible version, filtered.

Search text, institution and tier are filtered by ``repos.search_models``; base model and
tag come from each model's newest card (loaded for all listed models in one query), so they
are filtered here, before the page is cut.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.models import Model, Version
from registry.repos import services as repos

MAX_MODELS = 1000


@dataclasses.dataclass(frozen=True)
class BrowseFilters:
    search: str = ""
    institution: str = ""
    tier: str = ""
    base_model: str = ""
    tag: str = ""

    @property
    def active(self) -> bool:
        return any(dataclasses.astuple(self))


@dataclasses.dataclass(frozen=True)
class ModelRow:
    model: Model
    version: Version | None

    @property
    def card(self) -> dict[str, Any]:
        return (self.version.card_data if self.version else None) or {}

    @property
    def base_models(self) -> list[str]:
        return as_names(self.card.get("base_model"))

    @property
    def tags(self) -> list[str]:
        return as_names(self.card.get("tags"))

    @property
    def summary(self) -> str:
        text = self.card.get("intended_use") or self.card.get("description") or ""
        return str(text)[:280]


@dataclasses.dataclass(frozen=True)
class Facets:
    institutions: list[tuple[str, str]]
    tiers: list[str]
    base_models: list[str]
    tags: list[str]


def as_names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, (str, int, float)) and str(v).strip()]
    return []


def browse(
    db: Session, filters: BrowseFilters, tiers: Iterable[str]
) -> tuple[list[ModelRow], Facets]:
    """Rows matching ``filters`` (newest first) and the choices for every filter."""
    models = repos.search_models(db, limit=MAX_MODELS)
    newest = repos.latest_visible(db, models)
    every = [ModelRow(m, newest.get(m.id)) for m in models]
    facets = Facets(
        institutions=sorted({(r.model.namespace, r.model.institution.name) for r in every}),
        tiers=sorted(tiers),
        base_models=sorted({b for r in every for b in r.base_models}),
        tags=sorted({t for r in every for t in r.tags}),
    )
    matching = repos.search_models(
        db,
        search=filters.search or None,
        author=filters.institution or None,
        tier=filters.tier or None,
        limit=MAX_MODELS,
    )
    by_id = {r.model.id: r for r in every}
    rows = [by_id.get(m.id) or ModelRow(m, None) for m in matching]
    if filters.base_model:
        rows = [r for r in rows if filters.base_model in r.base_models]
    if filters.tag:
        rows = [r for r in rows if filters.tag in r.tags]
    return rows, facets


def institution_models(db: Session, institution_id: int) -> list[Model]:
    """An institution's models (any state), newest first, for its publishers' pages."""
    return list(
        db.scalars(
            select(Model).where(Model.institution_id == institution_id).order_by(Model.id.desc())
        )
    )


def named_models(db: Session, names: list[str]) -> list[tuple[str, Model | None]]:
    """Each ``namespace/name`` (``@revision`` allowed) with its model here, if there is one."""
    found: list[tuple[str, Model | None]] = []
    for name in names:
        namespace, _, rest = name.partition("/")
        model_name = rest.partition("@")[0]
        model = None
        if repos.NAMESPACE_RE.match(namespace) and repos.NAME_RE.match(model_name or "-"):
            model = repos.find_model(db, namespace, model_name)
        if model is not None and repos.latest_published(db, model, include_withdrawn=True) is None:
            model = None  # not visible yet: no link to a page that would say "not found"
        found.append((name, model))
    return found
