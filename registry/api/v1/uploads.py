"""Routes: resumable upload sessions (open, chunk PUT/HEAD, manifest preview, commit, abort)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import Response, g, jsonify, request

from client.shared.rules import commit_id
from registry.access.seam import authorize, current_principal, requires
from registry.api.bodies import parse_body
from registry.api.openapi import document
from registry.api.schemas.publishing import CommitBody
from registry.api.v1.blueprint import bp
from registry.api.v1.serializers import (
    PROBLEM_SCHEMA,
    VERSION_SCHEMA,
    iso,
    problem_list,
    version_json,
)
from registry.api.v1.wsgi_input import upload_body
from registry.context import current_registry
from registry.db import commit_early
from registry.errors import Conflict, Unauthorized
from registry.models import Model, UploadFile, UploadSession, Version
from registry.publishing import chunks, commit, review, sessions, signing
from registry.publishing.manifest import manifest_time
from registry.repos import services as repos

FILE_DECLARATION = {
    "type": "object",
    "required": ["path", "size", "sha256"],
    "properties": {
        "path": {"type": "string"},
        "size": {"type": "integer", "minimum": 0},
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    },
}
OPEN_SCHEMA = {
    "type": "object",
    "required": ["repo", "files"],
    "properties": {
        "repo": {"type": "string", "description": "namespace/name; namespace = institution"},
        "tier": {"type": "string", "description": "required for a new model"},
        "dua": {"type": "string"},
        "access_fields": {"type": "array", "items": {"type": "object"}},
        "tag": {"type": "string"},
        "base": {"type": "string", "description": "ns/name@rev of the base model version"},
        "files": {"type": "array", "items": FILE_DECLARATION},
        "card": {"type": "string", "description": "README.md text (model card)"},
    },
}
FILE_STATUS = {
    "type": "object",
    "properties": {
        "path": {"type": "string"},
        "size": {"type": "integer"},
        "sha256": {"type": "string"},
        "received": {"type": "integer"},
        "complete": {"type": "boolean"},
        "upload_url": {"type": "string"},
    },
}
SESSION_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "repo": {"type": "string"},
        "tag": {"type": ["string", "null"]},
        "state": {"enum": ["open", "committed", "aborted", "expired"]},
        "expires_at": {"type": "string"},
        "review_required": {"type": "boolean"},
        "version": {"type": "object"},
        "files": {"type": "array", "items": FILE_STATUS},
        "problems": {"type": "array", "items": PROBLEM_SCHEMA},
    },
}


def _limits() -> sessions.Limits:
    registry = current_registry()
    tiers = frozenset(registry.policy.tier_names())
    return sessions.Limits(
        max_file_size=registry.settings.max_file_size,
        institution_quota=registry.settings.institution_quota,
        session_hours=registry.settings.upload_session_hours,
        tiers=tiers,
        default_dua={tier: registry.policy.default_dua(tier) for tier in tiers},
        duas=frozenset(dua.id for dua in registry.policy.duas()),
    )


def _user() -> Any:
    user = current_principal().user
    if user is None:  # the policy already refuses anonymous uploads; never trust it blindly
        raise Unauthorized("Log in or send an API token with 'write' scope to upload.")
    return user


def _load(session_id: str) -> tuple[UploadSession, Model]:
    upload = sessions.get_session(g.db, session_id)
    model = g.db.get(Model, upload.model_id)
    authorize(model)
    return upload, model


def file_url(upload: UploadSession, path: str) -> str:
    return f"/api/v1/uploads/{upload.id}/files/{quote(path, safe='/')}"


def session_json(upload: UploadSession, model: Model) -> dict[str, Any]:
    registry = current_registry()
    version = g.db.get(Version, upload.version_id)
    files = [
        {
            "path": row.path,
            "size": row.size,
            "sha256": row.sha256,
            "received": chunks.received(registry.blobs, row),
            "complete": row.complete,
            "upload_url": file_url(upload, row.path),
        }
        for row in sessions.session_files(g.db, upload)
    ]
    return {
        "id": upload.id,
        "repo": model.repo_id,
        "tag": version.requested_tag if version else None,
        "state": "expired" if _expired(upload) else upload.state,
        "created_at": iso(upload.created_at),
        "expires_at": iso(upload.expires_at),
        "review_required": review.review_required(registry.policy, model.tier, model.namespace),
        "version": {
            "id": upload.version_id,
            "state": version.state if version else None,
            "commit": version.commit if version else None,
        },
        "files": files,
        "problems": problem_list(version.validation_report) if version else [],
    }


def _expired(upload: UploadSession) -> bool:
    return upload.state == "open" and upload.expires_at <= current_registry().now()


@bp.post("/uploads")
@requires("version:upload", deferred=True)
@document(
    "Open an upload session for a new version (creating the model if new)",
    body=OPEN_SCHEMA,
    response=SESSION_SCHEMA,
    status=201,
)
def open_upload() -> tuple[Response, int]:
    registry = current_registry()
    user = _user()
    req = sessions.parse_open_request(request.get_json(silent=True))
    institution = sessions.find_institution(g.db, req.namespace, user=user, name=req.name)
    limits = _limits()
    model = repos.find_model(g.db, req.namespace, req.name)
    if model is None:
        authorize(institution, action="model:create")
        model = sessions.new_model(institution, req, limits)
    authorize(model)
    upload = sessions.open_session(
        g.db,
        registry.blobs,
        model,
        req,
        user=user,
        limits=limits,
        now=registry.now(),
    )
    return jsonify(session_json(upload, model)), 201


@bp.get("/uploads/<session_id>")
@requires("version:upload", deferred=True)
@document("An upload session: state, files with received bytes, problems", response=SESSION_SCHEMA)
def get_upload(session_id: str) -> Response:
    upload, model = _load(session_id)
    return jsonify(session_json(upload, model))


@bp.route("/uploads/<session_id>/files/<anypath:path>", methods=["PUT"])
@requires("version:upload", deferred=True)
@document(
    "Send a chunk of a declared file (Content-Range: bytes a-b/total); all or nothing",
    body={"type": "string", "format": "binary"},
    response=FILE_STATUS,
    content_type="application/octet-stream",
)
def put_chunk(session_id: str, path: str) -> Response:
    registry = current_registry()
    upload, _model = _load(session_id)
    sessions.require_open(upload, registry.now())
    row = sessions.session_file(g.db, upload, path)
    if row.complete:
        raise Conflict(
            f"{path} is already complete; nothing more to send",
            headers={"Upload-Offset": str(row.size)},
        )
    chunk = chunks.parse_chunk(
        request.headers.get("Content-Range"), request.content_length, row.size, path
    )
    g.db.close()  # no connection is held while the body streams in
    received = chunks.receive(registry.blobs, row, chunk, upload_body(request))
    upload = g.db.get(UploadSession, session_id)
    row = g.db.get(UploadFile, row.id)
    assert upload is not None and row is not None
    if upload.state != "open":  # aborted or committed while the body streamed in
        registry.blobs.stage_discard(sessions.upload_key(row))
        sessions.require_open(upload, registry.now())
    sessions.touch(upload, registry.now(), registry.settings.upload_session_hours)
    if received.blob is not None:
        chunks.mark_complete(g.db, row, received.blob, registry.now())
    # The bytes are in the store: their record must survive a finalize that fails below.
    commit_early(g.db, "a received chunk is confirmed")
    if received.size == row.size and not row.complete:
        chunks.finalize_file(g.db, registry.blobs, row, registry.now())
    response = jsonify(
        {"path": row.path, "size": row.size, "received": received.size, "complete": row.complete}
    )
    response.headers["Upload-Offset"] = str(received.size)
    return response


@bp.route("/uploads/<session_id>/files/<anypath:path>", methods=["HEAD"])
@requires("version:upload", deferred=True)
def head_file(session_id: str, path: str) -> Response:
    upload, _model = _load(session_id)
    row = sessions.session_file(g.db, upload, path)
    size = chunks.received(current_registry().blobs, row)
    response = Response(status=200)
    response.headers["Upload-Offset"] = str(size)
    response.headers["Upload-Length"] = str(row.size)
    response.headers["Upload-Complete"] = "true" if row.complete else "false"
    response.headers["Upload-State"] = upload.state
    if size:
        response.headers["Range"] = f"bytes=0-{size - 1}"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/uploads/<session_id>/manifest-preview")
@requires("version:upload", deferred=True)
@document(
    "The exact canonical manifest bytes a publisher signs; the first call fixes its time",
    response={
        "type": "object",
        "properties": {
            "manifest": {"type": "string"},
            "commit": {"type": "string"},
            "published_at": {"type": "string"},
        },
    },
)
def manifest_preview(session_id: str) -> Response:
    upload, _model = _load(session_id)
    body = commit.preview_manifest(g.db, upload, current_registry().now())
    text = body.decode("ascii")
    return jsonify(
        {
            "manifest": text,
            "commit": commit_id(body),
            "published_at": iso(manifest_time(text)),
        }
    )


@bp.post("/uploads/<session_id>/commit")
@requires("version:upload", deferred=True)
@document(
    "Validate every file and submit the version for review or publish it",
    body=CommitBody,
    response={
        "type": "object",
        "properties": {"state": {"type": "string"}, "version": VERSION_SCHEMA},
    },
)
def commit_upload(session_id: str) -> Response:
    registry = current_registry()
    upload, model = _load(session_id)
    body = parse_body(CommitBody) if request.content_length else CommitBody()
    signature, kid = body.publisher_signature, body.publisher_key_id
    version = commit.commit_session(
        g.db,
        registry.blobs,
        upload,
        review_required=review.review_required(registry.policy, model.tier, model.namespace),
        max_file_size=registry.settings.max_file_size,
        policies=registry.policy.policies,
        signer=lambda: signing.load_signer(g.db, registry.settings, registry.now()),
        publisher_signature=signature,
        publisher_key_id=kid,
        actor=_user(),
        now=registry.now(),
    )
    return jsonify({"state": version.state, "version": version_json(version)})


@bp.delete("/uploads/<session_id>")
@requires("version:upload", deferred=True)
@document("Abort an upload session; its staged bytes are dropped", response=SESSION_SCHEMA)
def abort_upload(session_id: str) -> Response:
    registry = current_registry()
    upload, model = _load(session_id)
    sessions.require_open(upload, registry.now())
    sessions.abort_session(
        g.db,
        registry.blobs,
        upload,
        actor=_user(),
        now=registry.now(),
    )
    return jsonify(session_json(upload, model))
