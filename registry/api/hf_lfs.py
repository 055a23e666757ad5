"""The Git LFS side of stock hub uploads: the batch endpoint and self-authorising hrefs.

``POST /{repo}.git/info/lfs/objects/batch`` answers, per object, nothing (the caller's
institution already holds those bytes), a single ``PUT`` href, or a multipart plan for
large files. Hrefs carry a signed ticket (institution, uploader, oid, size; valid for the
upload-session lifetime): the hub client sends them no ``Authorization`` header. Each
received object is recorded as an ``upload:lfs-object`` event, the proof a later commit
needs before it may reference those bytes (published sha256s are public, so knowing one
proves nothing).
"""

from __future__ import annotations

import math
from typing import Any

from flask import Response, g, jsonify, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select

from client.shared.rules import SHA256_RE
from registry.access.seam import authorize, current_principal, requires
from registry.api.hf_blueprint import bp
from registry.audit.services import record_event
from registry.context import current_registry
from registry.errors import BadRequest, NotFound, Unauthorized, ValidationFailed
from registry.models import AuditEvent, Institution, Model, User
from registry.publishing import ledger, sessions
from registry.repos import services as repos
from registry.storage import BlobIntegrityError
from registry.storage.keys import is_upload_key

LFS_JSON = "application/vnd.git-lfs+json"
RECEIPT_TAG = "upload:lfs-object"
XET_REFUSAL = (
    "This registry does not speak the Xet storage protocol. Set HF_HUB_DISABLE_XET=1 (the "
    "client then uploads through Git LFS), or publish with `registry-client push`."
)


def uploader() -> User:
    user = current_principal().user
    if user is None:
        raise Unauthorized("Send an API token with 'write' scope to upload.")
    return user


def upload_target(namespace: str, name: str) -> tuple[Institution, Model | None]:
    """The institution (and model, once it exists) the caller may upload to, or a denial."""
    repos.check_repo_id(namespace, name)
    user = uploader()
    institution = sessions.find_institution(g.db, namespace, user=user, name=name)
    model = repos.find_model(g.db, namespace, name)
    if model is None:
        authorize(institution, action="model:create")
    authorize(model if model is not None else institution)
    return institution, model


def holds(institution_id: int, slug: str, sha256: str) -> bool:
    """Whether the institution has these bytes: published, in a session, or LFS-received."""
    if not current_registry().blobs.exists(sha256):
        return False
    if ledger.institution_holds(g.db, institution_id, sha256):
        return True
    receipt = g.db.scalar(
        select(AuditEvent.id)
        .where(AuditEvent.tag == RECEIPT_TAG, AuditEvent.target == _receipt_target(slug, sha256))
        .limit(1)
    )
    return receipt is not None


def _receipt_target(slug: str, sha256: str) -> str:
    return f"{slug} blob {sha256}"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_registry().settings.secret_key, salt="hf-lfs-upload")


@bp.post("/<namespace>/<name>.git/info/lfs/objects/batch")
@requires("version:upload", deferred=True)
def lfs_batch(namespace: str, name: str) -> Response:
    institution, _model = upload_target(namespace, name)
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("objects"), list):
        raise BadRequest("Send a Git LFS batch request: {operation, transfers, objects: [...]}")
    if body.get("operation") != "upload":
        raise BadRequest("Only LFS uploads are served here; download files through /resolve/.")
    transfers = body.get("transfers") or ["basic"]
    if not {"basic", "multipart"} & set(transfers):
        raise BadRequest(XET_REFUSAL)
    if body.get("hash_algo", "sha256") != "sha256":
        raise BadRequest("Only sha256 LFS object ids are supported")
    settings = current_registry().settings
    multipart = "multipart" in transfers
    answers = [
        _object_answer(institution, item, multipart=multipart, max_size=settings.max_file_size)
        for item in body["objects"]
    ]
    response = jsonify({"transfer": "basic", "objects": answers, "hash_algo": "sha256"})
    response.headers["Content-Type"] = LFS_JSON
    return response


def _object_answer(
    institution: Institution, item: Any, *, multipart: bool, max_size: int
) -> dict[str, Any]:
    oid = item.get("oid") if isinstance(item, dict) else None
    size = item.get("size") if isinstance(item, dict) else None
    if not isinstance(oid, str) or not SHA256_RE.fullmatch(oid):
        return {
            "oid": str(oid),
            "size": size,
            "error": {"code": 422, "message": "oid must be a sha256"},
        }
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return {"oid": oid, "size": size, "error": {"code": 422, "message": "size must be >= 0"}}
    if size > max_size:
        message = f"{size} bytes is over this registry's per-file limit of {max_size} bytes"
        return {"oid": oid, "size": size, "error": {"code": 422, "message": message}}
    if holds(institution.id, institution.slug, oid):
        return {"oid": oid, "size": size}
    settings = current_registry().settings
    ticket = _serializer().dumps([institution.id, uploader().id, oid, size])
    href = f"{request.url_root.rstrip('/')}/api/hf-lfs/{ticket}"
    upload: dict[str, Any] = {"href": href, "expires_in": settings.upload_session_hours * 3600}
    if multipart and size >= settings.hf_lfs_multipart_threshold:
        part = settings.hf_lfs_part_size
        header = {"chunk_size": str(part)}
        header.update({str(n): f"{href}/{n}" for n in range(1, math.ceil(size / part) + 1)})
        upload["header"] = header
    return {"oid": oid, "size": size, "authenticated": True, "actions": {"upload": upload}}


def _ticket(ticket: str) -> tuple[Institution, User, str, int]:
    hours = current_registry().settings.upload_session_hours
    try:
        institution_id, user_id, oid, size = _serializer().loads(ticket, max_age=hours * 3600)
    except (BadSignature, ValueError, TypeError):
        raise Unauthorized(
            "This LFS upload link is invalid or expired; run the upload again for a new one."
        ) from None
    institution = g.db.get(Institution, institution_id)
    user = g.db.get(User, user_id)
    if institution is None or user is None or not user.is_active:
        raise Unauthorized("This LFS upload link's account or institution no longer exists.")
    return institution, user, oid, size


def _staging_key(institution: Institution, oid: str) -> str:
    key = f"hf-{institution.id}-{oid}"
    assert is_upload_key(key)
    return key


@bp.put("/api/hf-lfs/<ticket>")
@requires("public")
def lfs_put(ticket: str) -> Response:
    """A whole object in one body (the ``basic`` transfer)."""
    institution, user, oid, size = _ticket(ticket)
    blobs = current_registry().blobs
    if request.content_length is not None and request.content_length != size:
        raise BadRequest(f"This object is {size} bytes; the body has {request.content_length}")
    g.db.close()  # no database connection is held while the body streams in
    try:
        info = blobs.put_stream(request.stream, expected_sha256=oid, expected_size=size)
    except BlobIntegrityError as error:
        raise ValidationFailed(f"LFS object {oid[:12]}… did not arrive intact: {error}") from None
    _receipt(institution, user, oid, info.size)
    return Response(status=200)


@bp.put("/api/hf-lfs/<ticket>/<int:part>")
@requires("public")
def lfs_put_part(ticket: str, part: int) -> Response:
    """One part of a multipart object; parts arrive in order (the hub client sends them so)."""
    institution, _user, oid, size = _ticket(ticket)
    settings = current_registry().settings
    chunk = settings.hf_lfs_part_size
    parts = math.ceil(size / chunk)
    if not 1 <= part <= parts:
        raise NotFound(f"This object has parts 1 to {parts}, not {part}")
    offset = (part - 1) * chunk
    length = min(chunk, size - offset)
    g.db.close()
    try:
        staged = current_registry().blobs.stage_write(
            _staging_key(institution, oid), offset, request.stream, length
        )
    except BlobIntegrityError as error:
        raise BadRequest(f"Part {part} should be {length} bytes: {error}") from None
    response = Response(status=200)
    response.headers["ETag"] = f'"{part}-{staged}"'
    return response


@bp.post("/api/hf-lfs/<ticket>")
@requires("public")
def lfs_complete(ticket: str) -> Response:
    """Multipart completion: the staged parts become the content-addressed blob."""
    institution, user, oid, size = _ticket(ticket)
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict) or body.get("oid") != oid:
        raise BadRequest("Send {oid, parts: [{partNumber, etag}]} for this object")
    try:
        info = current_registry().blobs.stage_commit(
            _staging_key(institution, oid), expected_sha256=oid, expected_size=size
        )
    except BlobIntegrityError as error:
        raise ValidationFailed(
            f"LFS object {oid[:12]}… did not arrive intact ({error}); upload it again."
        ) from None
    _receipt(institution, user, oid, info.size)
    return jsonify({"oid": oid, "size": info.size})


def _receipt(institution: Institution, user: User, oid: str, size: int) -> None:
    now = current_registry().now()
    ledger.record_blob(g.db, oid, size, now)
    record_event(
        g.db,
        RECEIPT_TAG,
        actor=g.db.merge(user),
        target=_receipt_target(institution.slug, oid),
        details={"sha256": oid, "size": size},
        now=now,
    )


XET_DEAD_END = "/api/xet-unsupported/set-HF_HUB_DISABLE_XET=1-or-use-registry-client-push"


@bp.get("/api/models/<namespace>/<name>/xet-write-token/<revision:revision>")
@bp.get("/api/models/<namespace>/<name>/xet-read-token/<revision:revision>")
@requires("public")
def xet_token(namespace: str, name: str, revision: str) -> Response:
    """Xet clients (hub >= 1.20) fetch this token in native code that shows only a status and
    a URL; so the token names a storage URL that says what to do, and fails there."""
    now = int(current_registry().now().timestamp())
    cas = f"{request.url_root.rstrip('/')}{XET_DEAD_END}"
    return jsonify({"casUrl": cas, "accessToken": "xet-unsupported", "exp": now + 600})


@bp.route(f"{XET_DEAD_END}/<anypath:rest>", methods=["GET", "POST", "PUT", "HEAD"])
@requires("public")
def xet_dead_end(rest: str) -> Response:
    raise BadRequest(XET_REFUSAL)
