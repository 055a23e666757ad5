"""``GET /api/models`` as the hub answers it: filters, sort, direction, expansions, paging.

The catalogue of a registry is small (hundreds of models), so filtering on card-derived
tags and sorting happen on the visible models in memory, after two queries that do not
grow with the number of models (the models, then each one's newest version).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, g, jsonify, request
from sqlalchemy import select

from registry.access.seam import requires
from registry.api.hf import link_next, model_summary, model_tags
from registry.api.hf_blueprint import bp
from registry.api.params import bool_arg, cursor_arg, int_arg
from registry.errors import BadRequest
from registry.models import File, Model, Version
from registry.repos import services as repos

PIPELINE_TAG = "text-to-image"
SortKey = Callable[[dict[str, Any]], Any]
# The hub's sort fields; counters the registry does not keep sort as equal (stable order).
SORTS: dict[str, SortKey] = {
    "lastModified": lambda m: m["lastModified"] or "",
    "last_modified": lambda m: m["lastModified"] or "",
    "createdAt": lambda m: m["createdAt"] or "",
    "created_at": lambda m: m["createdAt"] or "",
    "id": lambda m: m["id"].lower(),
    "modelId": lambda m: m["id"].lower(),
    "author": lambda m: m["author"],
    "downloads": lambda m: m["downloads"],
    "downloadsAllTime": lambda m: m["downloads"],
    "likes": lambda m: m["likes"],
    "trendingScore": lambda m: 0,
    "trending_score": lambda m: 0,
}


@bp.get("/api/models")
@requires("model:list")
def list_models() -> Response:
    limit = int_arg("limit", 1000, minimum=1, maximum=1000)
    offset = cursor_arg()
    filters = _filters()
    sort, descending = _sort()
    gated = _optional_bool("gated")
    pipeline_tag = request.args.get("pipeline_tag")
    expand = set(request.args.getlist("expand") + request.args.getlist("expand[]"))
    full = bool_arg("full")
    card = bool_arg("cardData") or "cardData" in expand
    siblings = full or "siblings" in expand

    models = repos.search_models(
        g.db,
        search=request.args.get("search") or None,
        author=request.args.get("author") or None,
        tier=request.args.get("tier") or None,
        limit=None,
    )
    newest = repos.latest_visible(g.db, models)
    rows = [
        (m, newest.get(m.id))
        for m in models
        if _matches(m, newest.get(m.id), filters, gated, pipeline_tag)
    ]
    body = [_entry(m, v, card=card) for m, v in rows]
    if sort is not None:
        body.sort(key=SORTS[sort], reverse=descending)
    page = body[offset : offset + limit]
    if siblings:
        _add_siblings(page, {m.repo_id: v for m, v in rows})
    response = jsonify(page)
    if offset + limit < len(body):
        link_next(response, offset + limit)
    return response


def _filters() -> list[str]:
    values: list[str] = []
    for raw in request.args.getlist("filter"):
        values += [part.strip() for part in raw.split(",") if part.strip()]
    return values


def _sort() -> tuple[str | None, bool]:
    sort = request.args.get("sort") or None
    if sort is not None and sort not in SORTS:
        raise BadRequest(
            f"Query parameter 'sort' must be one of {', '.join(sorted(SORTS))}, not {sort!r}"
        )
    raw = request.args.get("direction")
    if raw in (None, "", "-1"):
        return sort, True
    if raw == "1":
        return sort, False
    raise BadRequest(f"Query parameter 'direction' must be -1 (descending) or 1, not {raw!r}")


def _optional_bool(name: str) -> bool | None:
    return bool_arg(name) if name in request.args else None


def _matches(
    model: Model,
    version: Version | None,
    filters: list[str],
    gated: bool | None,
    pipeline_tag: str | None,
) -> bool:
    if gated is not None and (model.tier != "open") != gated:
        return False
    if pipeline_tag and pipeline_tag != PIPELINE_TAG:
        return False
    if not filters:
        return True
    tags = set(model_tags(model, version))
    tags.add(model.repo_id)
    return all(f in tags for f in filters)


def _entry(model: Model, version: Version | None, *, card: bool) -> dict[str, Any]:
    entry = model_summary(model, version)
    if card:
        entry["cardData"] = (version.card_data if version is not None else None) or {}
    return entry


def _add_siblings(page: list[dict[str, Any]], versions: dict[str, Version | None]) -> None:
    ids = [v.id for v in versions.values() if v is not None]
    paths: dict[int, list[str]] = {}
    if ids:
        for version_id, path in g.db.execute(
            select(File.version_id, File.path).where(File.version_id.in_(ids)).order_by(File.path)
        ):
            paths.setdefault(version_id, []).append(path)
    for entry in page:
        version = versions.get(entry["id"])
        names = paths.get(version.id, []) if version is not None else []
        entry["siblings"] = [{"rfilename": p} for p in names]
