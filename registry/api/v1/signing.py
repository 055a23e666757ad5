"""Routes: the registry's public signing keys and institutions' publisher keys."""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify

from registry.access.seam import authorize, current_principal, requires
from registry.api.bodies import parse_body
from registry.api.openapi import document
from registry.api.schemas.publishing import PublicKeyBody
from registry.api.v1.blueprint import bp
from registry.api.v1.serializers import iso
from registry.context import current_registry
from registry.models import InstitutionKey, SigningKey
from registry.publishing import institution_keys, signing

KEY_SCHEMA = {
    "type": "object",
    "properties": {
        "key_id": {"type": "string", "description": "sha256 (hex) of the raw public key"},
        "public_key": {"type": "string", "description": "base64 raw 32-byte Ed25519 key"},
        "created_at": {"type": "string"},
        "retired_at": {"type": ["string", "null"]},
        "active": {"type": "boolean"},
    },
}
INSTITUTION_KEY_SCHEMA = {
    "type": "object",
    "properties": {
        "key_id": {"type": "string"},
        "public_key": {"type": "string"},
        "institution": {"type": "string"},
        "created_at": {"type": "string"},
        "revoked_at": {"type": ["string", "null"]},
    },
}


def _registry_key(key: SigningKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "public_key": key.public_key,
        "created_at": iso(key.created_at),
        "retired_at": iso(key.retired_at),
        "active": key.retired_at is None,
    }


def _institution_key(key: InstitutionKey, slug: str) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "public_key": key.public_key,
        "institution": slug,
        "created_at": iso(key.created_at),
        "revoked_at": iso(key.revoked_at),
    }


@bp.get("/keys")
@requires("public")
@document(
    "The registry's Ed25519 public keys (current and retired) for verifying manifests",
    response={
        "type": "object",
        "properties": {"algorithm": {"const": "ed25519"}, "keys": {"type": "array",
                                                                  "items": KEY_SCHEMA}},
    },
)  # fmt: skip
def registry_keys() -> Response:
    registry = current_registry()
    keys = signing.list_keys(g.db)
    if not any(key.retired_at is None for key in keys):
        signing.load_signer(g.db, registry.settings, registry.now())
        keys = signing.list_keys(g.db)
    return jsonify({"algorithm": signing.ALGORITHM, "keys": [_registry_key(k) for k in keys]})


@bp.get("/institutions/<slug>/keys")
@requires("public")
@document(
    "An institution's publisher keys (revoked ones included)",
    response={"type": "object", "properties": {"keys": {"type": "array",
                                                        "items": INSTITUTION_KEY_SCHEMA}}},
)  # fmt: skip
def list_institution_keys(slug: str) -> Response:
    institution = institution_keys.find_institution(g.db, slug)
    keys = institution_keys.list_keys(g.db, institution)
    return jsonify({"keys": [_institution_key(k, slug) for k in keys]})


@bp.post("/institutions/<slug>/keys")
@requires("institution:key", deferred=True)
@document(
    "Register an Ed25519 public key for the institution's publisher signatures",
    body=PublicKeyBody,
    response=INSTITUTION_KEY_SCHEMA,
    status=201,
)  # fmt: skip
def register_institution_key(slug: str) -> tuple[Response, int]:
    institution = institution_keys.find_institution(g.db, slug)
    authorize(institution)
    key = institution_keys.register_key(
        g.db,
        institution,
        parse_body(PublicKeyBody).public_key,
        actor=current_principal().user,
        now=current_registry().now(),
    )
    return jsonify(_institution_key(key, slug)), 201


@bp.delete("/institutions/<slug>/keys/<key_id>")
@requires("institution:key", deferred=True)
@document("Revoke an institution key: it signs no new commits", response=INSTITUTION_KEY_SCHEMA)
def revoke_institution_key(slug: str, key_id: str) -> Response:
    institution = institution_keys.find_institution(g.db, slug)
    authorize(institution)
    key = institution_keys.revoke_key(
        g.db,
        institution,
        key_id,
        actor=current_principal().user,
        now=current_registry().now(),
    )
    return jsonify(_institution_key(key, slug))
