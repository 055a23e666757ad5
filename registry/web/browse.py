"""Browsing: the home page with search and filters, and the model page."""

from __future__ import annotations

from flask import g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from registry.access.seam import authorize, requires
from registry.context import current_registry
from registry.models import Version
from registry.repos import services as repos
from registry.web.blueprint import bp
from registry.web.cards import front_matter_rows, render_card
from registry.web.catalog import BrowseFilters, as_names, browse, named_models
from registry.web.checklist import checklist, only_waiting
from registry.web.evaluation_view import evaluation_view
from registry.web.permissions import can, decision

PAGE_SIZE = 20


@bp.get("/")
@requires("model:list")
def home() -> str:
    filters = BrowseFilters(
        **{
            field: request.args.get(field, "").strip()[:200]
            for field in ("search", "institution", "tier", "base_model", "tag")
        }
    )
    rows, facets = browse(g.db, filters, current_registry().policy.tier_names())
    page = max(1, request.args.get("page", 1, type=int) or 1)
    start = (page - 1) * PAGE_SIZE
    return render_template(
        "browse/home.html",
        rows=rows[start : start + PAGE_SIZE],
        total=len(rows),
        page=page,
        has_next=start + PAGE_SIZE < len(rows),
        filters=filters,
        facets=facets,
    )


@bp.get("/models/<namespace>/<name>")
@bp.get("/models/<namespace>/<name>/revision/<revision>")
@requires("model:read", deferred=True)
def model_page(namespace: str, name: str, revision: str = "main") -> str:
    model = repos.get_model(g.db, namespace, name)
    authorize(model)
    version = repos.resolve_revision(g.db, model, revision)
    access = decision("version:download", version)
    steps = checklist(model, access)
    return render_template(
        "browse/model.html",
        model=model,
        version=version,
        revision=revision,
        versions=[v for v in model.versions if _listed(v)],
        tags={v.id: repos.version_tags(g.db, v) for v in model.versions},
        files=repos.version_files(g.db, version),
        card_html=render_card(version.card_text, top_level=3),
        card_rows=front_matter_rows(version.card_data),
        access=access,
        steps=steps,
        waiting=only_waiting(steps),
        evaluation=evaluation_view(version.card_data),
        card_bases=named_models(g.db, as_names((version.card_data or {}).get("base_model"))),
    )


@bp.get("/<namespace>/<name>")
@requires("model:read", deferred=True)
def hub_style_model_url(namespace: str, name: str) -> Response:
    """``/{ns}/{name}``, the address a Hugging Face user tries first, leads to the model page."""
    model = repos.get_model(g.db, namespace, name)
    authorize(model)
    return redirect(url_for("web.model_page", namespace=model.namespace, name=model.name))


def _listed(version: Version) -> bool:
    """Published and withdrawn versions for everyone; drafts for those who may read them."""
    if version.state in repos.VISIBLE_STATES:
        return True
    return can("version:read-draft", version)
