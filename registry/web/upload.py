"""The institutional upload form: create a model or a new version, upload, submit for review.

The page is a form; the browser does the upload itself through the JSON upload API
(``/api/v1/uploads``) with the session cookie and the CSRF header (static/js/upload.js).
"""

from __future__ import annotations

from flask import Response, g, jsonify, render_template, request, url_for

from client.shared.model_card import CARD_PATH, REQUIRED_CARD_FIELDS, parse_card
from registry.access.seam import authorize, current_principal, requires
from registry.api.bodies import parse_body
from registry.api.schemas.publishing import CardTextBody
from registry.context import current_registry
from registry.errors import NotFound
from registry.models import Version
from registry.repos import services as repos
from registry.web.blueprint import bp
from registry.web.cards import front_matter_rows, render_card
from registry.web.catalog import institution_models

DEFAULT_CHUNK = 16 * 1024 * 1024
MIN_CHUNK, MAX_CHUNK = 64 * 1024, 256 * 1024 * 1024
# The form's card fields, in order: key, label, hint, multi-line.
CARD_FIELDS = (
    ("license", "Licence", "An SPDX id, e.g. apache-2.0 or other.", False),
    ("base_model", "Base model", "What it was fine-tuned from; separate several by commas.", False),
    ("datasets", "Datasets", "Training data sets, separated by commas, e.g. mimic-cxr.", False),
    ("intended_use", "Intended use", "Who should use it, for what.", True),
    ("out_of_scope_use", "Out-of-scope use", "Uses you advise against (clinical use…).", True),
    ("limitations", "Limitations", "Known failure modes and biases.", True),
    ("training_data", "Training data", "Which images and reports, how selected.", True),
    ("evaluation", "Evaluation", "How it was evaluated, with results.", True),
    ("tags", "Tags", "Keywords separated by commas, e.g. chest-x-ray, lora.", False),
)


@bp.get("/publish")
@requires("account:read")
def upload_home() -> str:
    membership = current_principal().user.membership
    models = institution_models(g.db, membership.institution_id) if membership else []
    return render_template("upload/home.html", membership=membership, models=models)


@bp.get("/publish/upload")
@requires("model:create")
def upload_form() -> str:
    registry = current_registry()
    user = current_principal().user
    institution = user.membership.institution
    models = institution_models(g.db, institution.id)
    chunk = request.args.get("chunk_size", DEFAULT_CHUNK, type=int) or DEFAULT_CHUNK
    policy = registry.policy
    tiers = sorted(policy.tier_names())
    return render_template(
        "upload/form.html",
        institution=institution,
        models=models,
        selected=request.args.get("repo", ""),
        tiers=[(t, policy.default_dua(t) or "") for t in tiers],
        reviewed_tiers=[t for t in tiers if policy.review_required(t, institution.slug)],
        duas=policy.duas(),
        card_fields=CARD_FIELDS,
        required_fields=REQUIRED_CARD_FIELDS,
        base_models=[m.repo_id for m in repos.search_models(g.db, limit=500)],
        chunk_size=min(max(chunk, MIN_CHUNK), MAX_CHUNK),
        user=user,
    )


@bp.post("/publish/card-fields")
@requires("model:create")
def card_fields() -> Response:
    """A README.md's front matter as form values, so a picked folder fills the form."""
    data, body, problems = parse_card(parse_body(CardTextBody).text)
    fields = {}
    for key, value in data.items():
        if isinstance(value, list):
            fields[key] = ", ".join(str(v) for v in value)
        elif isinstance(value, (str, int, float)):
            fields[key] = str(value)
    listed = [{"field": CARD_PATH, "problem": problem} for problem in problems]
    return jsonify({"fields": fields, "body": body.lstrip("\n"), "problems": listed})


@bp.get("/publish/versions/<int:version_id>")
@requires("version:read-draft", deferred=True)
def upload_version(version_id: int) -> str:
    version = g.db.get(Version, version_id)
    if version is None:
        raise NotFound(f"No version #{version_id}.")
    authorize(version)
    return render_template(
        "upload/version.html",
        version=version,
        model=version.model,
        files=repos.version_files(g.db, version),
        card_html=render_card(version.card_text, top_level=3),
        card_rows=front_matter_rows(version.card_data),
        model_url=url_for(
            "web.model_page", namespace=version.model.namespace, name=version.model.name
        ),
    )
