"""Routes: versions of a model (details, review decisions, withdrawal, signed manifest)."""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify

from registry.access.seam import authorize, current_principal, requires
from registry.api.bodies import parse_body
from registry.api.openapi import document
from registry.api.schemas.publishing import ReasonBody
from registry.api.v1.blueprint import bp
from registry.api.v1.serializers import VERSION_SCHEMA, iso, version_json
from registry.context import current_registry
from registry.errors import RepoNotFound
from registry.models import Model, Version
from registry.publishing import review, signing, withdrawal
from registry.repos import services as repos

MANIFEST_SCHEMA = {
    "type": "object",
    "properties": {
        "repo": {"type": "string"},
        "commit": {"type": "string"},
        "state": {"type": "string"},
        "manifest": {"type": "string", "description": "canonical JSON; sign/verify these bytes"},
        "algorithm": {"const": "ed25519"},
        "signature": {"type": "string"},
        "key_id": {"type": "string"},
        "publisher_signature": {"type": ["string", "null"]},
        "publisher_key_id": {"type": ["string", "null"]},
        "withdrawn": {"type": ["object", "null"]},
    },
}


def _model(namespace: str, name: str) -> Model:
    repos.check_repo_id(namespace, name)
    model = repos.find_model(g.db, namespace, name)
    if model is None:
        raise RepoNotFound(f"Repository {namespace}/{name} not found.")
    return model


def _reason() -> str:
    return parse_body(ReasonBody).reason


def _signer() -> Any:
    registry = current_registry()
    return lambda: signing.load_signer(g.db, registry.settings, registry.now())


@bp.get("/reviews")
@requires("version:review")
@document(
    "Versions waiting for a registry admin's review: card, files, validation report",
    response={
        "type": "object",
        "properties": {"reviews": {"type": "array", "items": VERSION_SCHEMA}},
    },
)
def list_reviews() -> Response:
    reviews = []
    for version in review.pending_reviews(g.db):
        entry = version_json(version)
        entry["card_text"] = version.card_text
        reviews.append(entry)
    return jsonify({"reviews": reviews})


VERSION_SUMMARY_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "commit": {"type": ["string", "null"]},
        "state": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "created_at": {"type": ["string", "null"]},
        "submitted_at": {"type": ["string", "null"]},
        "published_at": {"type": ["string", "null"]},
        "withdrawn_at": {"type": ["string", "null"]},
        "withdrawn_reason": {"type": ["string", "null"]},
        "reject_reason": {"type": ["string", "null"]},
    },
}


@bp.get("/models/<namespace>/<name>/versions")
@requires("model:read", deferred=True)
@document(
    "Every version of a model, newest first; unpublished ones only for those who may read "
    "drafts (the owning institution's publishers and admins, registry admins)",
    response={
        "type": "object",
        "properties": {
            "repo": {"type": "string"},
            "versions": {"type": "array", "items": VERSION_SUMMARY_SCHEMA},
        },
    },
)
def list_versions(namespace: str, name: str) -> Response:
    model = _model(namespace, name)
    authorize(model)
    registry, principal = current_registry(), current_principal()
    entries = []
    for version, tags in repos.model_versions(g.db, model):
        visible = version.state in repos.VISIBLE_STATES
        if not visible:
            may = registry.policy.decide(
                principal, "version:read-draft", version, db=g.db, now=registry.now()
            )
            if not may.allowed:
                continue
        entries.append(
            {
                "id": version.id,
                "commit": version.commit if visible else None,
                "state": version.state,
                "tags": tags,
                "created_at": iso(version.created_at),
                "submitted_at": iso(version.submitted_at),
                "published_at": iso(version.published_at),
                "withdrawn_at": iso(version.withdrawn_at),
                "withdrawn_reason": version.withdrawn_reason,
                "reject_reason": version.reject_reason,
            }
        )
    if not entries:  # nothing published and no draft this caller may see: no such model
        raise RepoNotFound(f"Repository {model.repo_id} not found.")
    return jsonify({"repo": model.repo_id, "versions": entries})


def _hide_unpublished_model(model: Model, version: Version) -> None:
    """A model with nothing published is missing to whoever may not read its drafts."""
    registry = current_registry()
    if repos.latest_published(g.db, model, include_withdrawn=True) is not None:
        return
    may = registry.policy.decide(
        current_principal(), "version:read-draft", version, db=g.db, now=registry.now()
    )
    if not may.allowed:
        raise RepoNotFound(f"Repository {model.repo_id} not found.")


@bp.get("/models/<namespace>/<name>/versions/<ref>")
@requires("model:read", deferred=True)
@document("A version by registry id, commit, tag or main (unpublished: publishers and admins)",
          response=VERSION_SCHEMA)  # fmt: skip
def version_detail(namespace: str, name: str, ref: str) -> Response:
    model = _model(namespace, name)
    version = review.find_version(g.db, model, ref)
    if version.state not in repos.VISIBLE_STATES:
        _hide_unpublished_model(model, version)
        authorize(version, action="version:read-draft")
    authorize(model)
    entry = version_json(version)
    if version.state not in repos.VISIBLE_STATES:
        entry["card_text"] = version.card_text
    return jsonify(entry)


@bp.post("/models/<namespace>/<name>/versions/<ref>/publish")
@requires("version:review", deferred=True)
@document("Publish a version in review (signs its manifest; one atomic step)",
          response=VERSION_SCHEMA)  # fmt: skip
def publish(namespace: str, name: str, ref: str) -> Response:
    registry = current_registry()
    version = review.find_version(g.db, _model(namespace, name), ref)
    authorize(version)
    review.publish_reviewed(
        g.db,
        version,
        signer=_signer(),
        actor=current_principal().user,
        now=registry.now(),
    )
    return jsonify(version_json(version))


@bp.post("/models/<namespace>/<name>/versions/<ref>/reject")
@requires("version:review", deferred=True)
@document("Reject a version in review with a reason", body=ReasonBody, response=VERSION_SCHEMA)
def reject(namespace: str, name: str, ref: str) -> Response:
    version = review.find_version(g.db, _model(namespace, name), ref)
    authorize(version)
    review.reject_version(
        g.db,
        version,
        _reason(),
        actor=current_principal().user,
        now=current_registry().now(),
    )
    return jsonify(version_json(version))


@bp.post("/models/<namespace>/<name>/versions/<ref>/withdraw")
@requires("version:withdraw", deferred=True)
@document("Withdraw a published version with a reason: its files are never served again",
          body=ReasonBody, response=VERSION_SCHEMA)  # fmt: skip
def withdraw(namespace: str, name: str, ref: str) -> Response:
    version = review.find_version(g.db, _model(namespace, name), ref)
    authorize(version)
    withdrawal.withdraw_version(
        g.db,
        version,
        _reason(),
        actor=current_principal().user,
        now=current_registry().now(),
    )
    return jsonify(version_json(version))


@bp.get("/models/<namespace>/<name>/versions/<rev>/manifest")
@requires("model:read", deferred=True)
@document("The signed manifest of a published (or withdrawn) version; it holds no weights",
          response=MANIFEST_SCHEMA)  # fmt: skip
def manifest(namespace: str, name: str, rev: str) -> Response:
    model = repos.get_model(g.db, namespace, name)
    authorize(model)
    version = repos.resolve_revision(g.db, model, rev)
    withdrawn = (
        {"at": iso(version.withdrawn_at), "reason": version.withdrawn_reason}
        if version.state == "withdrawn"
        else None
    )
    response = jsonify(
        {
            "repo": model.repo_id,
            "commit": version.commit,
            "state": version.state,
            "manifest": version.manifest,
            "algorithm": signing.ALGORITHM,
            "signature": version.signature,
            "key_id": version.signing_key_id,
            "publisher_signature": version.publisher_signature,
            "publisher_key_id": version.publisher_key_id,
            "withdrawn": withdrawn,
        }
    )
    response.headers["X-Repo-Commit"] = version.commit or ""
    return response
