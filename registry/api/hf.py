"""The Hugging Face Hub compatible read API (the subset stock clients use)."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlencode

from flask import Response, g, jsonify, redirect, request, send_file

from registry.access.seam import authorize, current_principal, requires
from registry.api.headers import content_disposition
from registry.api.hf_blueprint import bp, hub_model, hub_revision, readable_revision
from registry.api.params import (
    bool_arg,
    cursor_arg,
    encode_cursor,
    int_arg,
)
from registry.api.ranges import parse_range
from registry.api.v1.serializers import iso
from registry.audit.services import record_event
from registry.context import current_registry
from registry.errors import (
    BadRequest,
    EntryNotFound,
    RangeNotSatisfiable,
    RepoNotFound,
    Unauthorized,
)
from registry.models import File, Model, Version
from registry.publishing.withdrawal import refuse_withdrawn
from registry.repos import services as repos

STREAM_CHUNK = 1024 * 1024


def _gated(model: Model) -> bool | str:
    return False if model.tier == "open" else "manual"


def model_summary(model: Model, version: Version | None) -> dict[str, Any]:
    return {
        "_id": f"{model.id:024x}",
        "id": model.repo_id,
        "modelId": model.repo_id,
        "author": model.namespace,
        "sha": version.commit if version else None,
        "private": False,
        "disabled": False,
        "gated": _gated(model),
        "downloads": 0,
        "likes": 0,
        "library_name": "diffusers",
        "pipeline_tag": "text-to-image",
        "tags": model_tags(model, version),
        "createdAt": iso(model.created_at),
        "lastModified": iso(version.published_at if version else model.created_at),
        "accessTier": model.tier,
        "dua": model.dua,
    }


def model_tags(model: Model, version: Version | None) -> list[str]:
    """The hub's tag list: library, format, task, tier, licence, base models, datasets."""
    card = (version.card_data or {}) if version is not None else {}
    tags = ["diffusers", "safetensors", "text-to-image", f"tier:{model.tier}"]
    tags += [str(t) for t in _names(card.get("tags"))]
    if isinstance(card.get("license"), str):
        tags.append(f"license:{card['license']}")
    tags += [f"base_model:{b}" for b in _names(card.get("base_model"))]
    tags += [f"dataset:{d}" for d in _names(card.get("datasets"))]
    return list(dict.fromkeys(tags))


def _names(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, (str, int, float))]
    return []


def model_info_payload(model: Model, version: Version) -> dict[str, Any]:
    db = g.db
    files = repos.version_files(db, version)
    info = model_summary(model, version)
    info.update(
        {
            "cardData": version.card_data or {},
            "siblings": [
                {
                    "rfilename": f.path,
                    "size": f.size,
                    "blobId": f.sha256,
                    "lfs": {"sha256": f.sha256, "size": f.size, "pointerSize": 134},
                }
                for f in files
            ],
            "usedStorage": sum(f.size for f in files),
            "versionState": version.state,
            "versionTags": repos.version_tags(db, version),
            "baseModel": _base_ref(version),
        }
    )
    if version.state == "withdrawn":
        info["withdrawn"] = {"at": iso(version.withdrawn_at), "reason": version.withdrawn_reason}
    return info


def _base_ref(version: Version) -> str | None:
    base = version.base_version
    return f"{base.model.repo_id}@{base.commit}" if base is not None else None


@bp.get("/api/models/<namespace>/<name>")
@requires("model:read", deferred=True)
def model_info(namespace: str, name: str) -> Response:
    model, version = readable_revision(namespace, name, "main")
    return jsonify(model_info_payload(model, version))


@bp.get("/api/models/<namespace>/<name>/revision/<revision:revision>")
@requires("model:read", deferred=True)
def model_revision(namespace: str, name: str, revision: str) -> Response:
    if _xet_probe():
        # Clients 0.30-0.35 ask this before every upload, for repos not yet created too; the
        # answer reveals nothing about the repo, so it needs no lookup.
        authorize(None)
        return jsonify({"id": f"{namespace}/{name}", "xetEnabled": False})
    model, version = readable_revision(namespace, name, revision)
    refuse_withdrawn(version)
    return jsonify(model_info_payload(model, version))


@bp.get("/api/models/<namespace>/<name>/tree/<revision:revision>")
@bp.get("/api/models/<namespace>/<name>/tree/<revision:revision>/<anypath:path>")
@requires("model:read", deferred=True)
def list_tree(namespace: str, name: str, revision: str, path: str = "") -> Response:
    model, version = readable_revision(namespace, name, revision)
    refuse_withdrawn(version)
    path = path.strip("/")
    if path:
        repos.check_file_path(path)
    recursive = bool_arg("recursive")
    limit = int_arg("limit", current_registry().settings.tree_page_size, minimum=1, maximum=1000)
    offset = cursor_arg()
    entries = tree_entries(repos.version_files(g.db, version), path, recursive=recursive)
    if path and not entries:
        raise EntryNotFound(f"No folder {path!r} in {model.repo_id} at {version.commit}.")
    response = jsonify(entries[offset : offset + limit])
    response.headers["X-Repo-Commit"] = version.commit or ""
    if offset + limit < len(entries):
        link_next(response, offset + limit)
    return response


def _xet_probe() -> bool:
    expand = request.args.getlist("expand") + request.args.getlist("expand[]")
    return expand == ["xetEnabled"]


def tree_entries(files: list[File] | Any, prefix: str, *, recursive: bool) -> list[dict[str, Any]]:
    """Hugging Face tree entries for the files under ``prefix``, folders included."""
    base = f"{prefix}/" if prefix else ""
    entries: dict[str, dict[str, Any]] = {}
    for f in files:
        if not f.path.startswith(base):
            continue
        rest = f.path[len(base) :].split("/")
        for depth in range(1, len(rest)):
            folder = base + "/".join(rest[:depth])
            entries.setdefault(folder, _dir_entry(folder))
            if not recursive:
                break
        if recursive or len(rest) == 1:
            entries[f.path] = {
                "type": "file",
                "oid": f.sha256,
                "size": f.size,
                "path": f.path,
                "lfs": {"oid": f.sha256, "size": f.size, "pointerSize": 134},
            }
    return [entries[k] for k in sorted(entries)]


def _dir_entry(path: str) -> dict[str, Any]:
    oid = hashlib.sha1(path.encode(), usedforsecurity=False).hexdigest()
    return {"type": "directory", "oid": oid, "size": 0, "path": path}


def link_next(response: Response, offset: int) -> None:
    """Point ``Link: rel="next"`` at the same query from ``offset`` on (repeated keys kept)."""
    args = request.args.to_dict(flat=False)
    args["cursor"] = [encode_cursor(offset)]
    url = f"{request.base_url}?{urlencode(args, doseq=True)}"
    response.headers["Link"] = f'<{url}>; rel="next"'


@bp.route("/<namespace>/<name>/resolve/<revision:revision>/<anypath:path>", methods=["GET", "HEAD"])
@requires("version:download", deferred=True)
def resolve(namespace: str, name: str, revision: str, path: str) -> Response:
    try:
        model, version, file = repos.lookup_file(
            g.db, namespace, name, hub_revision(revision), path
        )
    except (BadRequest, RepoNotFound):
        hub_model(namespace, name)  # redirects when only the id's casing differs
        raise
    authorize(version)
    refuse_withdrawn(version)
    headers = {
        "X-Repo-Commit": version.commit or "",
        "ETag": f'"{file.sha256}"',
        "X-Linked-Etag": f'"{file.sha256}"',
        "X-Linked-Size": str(file.size),
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-store",
        "Content-Disposition": content_disposition(path, "inline"),
    }
    try:
        byte_range = parse_range(request.headers.get("Range"), file.size)
    except RangeNotSatisfiable as error:
        error.headers["Content-Range"] = f"bytes */{file.size}"
        raise
    if request.method == "HEAD":
        response = Response(status=200, headers=headers, mimetype="application/octet-stream")
        response.content_length = file.size
        return response
    response = _send_blob(file, byte_range, headers)  # a blob that cannot be sent raises here
    _record_download(model, version, file, byte_range)  # so only a download that starts counts
    return response


def _record_download(
    model: Model, version: Version, file: File, byte_range: tuple[int, int] | None
) -> None:
    db = g.db
    principal = current_principal()
    details: dict[str, Any] = {"path": file.path, "sha256": file.sha256, "size": file.size}
    if byte_range is not None:
        details["range"] = list(byte_range)
    if principal.token is not None:
        details["token"] = principal.token.prefix
    record_event(
        db,
        "version:download",
        actor=principal.user,
        target=f"{model.repo_id}@{version.commit}/{file.path}",
        model_id=model.id,
        version_id=version.id,
        details=details,
        now=current_registry().now(),
    )


def _send_blob(file: File, byte_range: tuple[int, int] | None, headers: dict[str, str]) -> Response:
    registry = current_registry()
    blobs = registry.blobs
    if registry.settings.s3_redirect:
        url = blobs.presigned_url(
            file.sha256,
            expires_in=registry.settings.presign_seconds,
            filename=file.path.rsplit("/", 1)[-1],
        )
        if url is not None:
            response = redirect(url, code=302)
            response.headers.update(headers)
            return response
    local = blobs.local_path(file.sha256)
    if byte_range is None and local is not None:
        response = send_file(
            local, mimetype="application/octet-stream", conditional=False, etag=False
        )
        response.headers.update(headers)
        return response
    start, end = byte_range if byte_range is not None else (0, file.size)
    stream = blobs.open(file.sha256, start, end)

    def body() -> Any:
        with stream:
            while chunk := stream.read(STREAM_CHUNK):
                yield chunk

    status = 206 if byte_range is not None else 200
    response = Response(body(), status=status, headers=headers, mimetype="application/octet-stream")
    response.content_length = end - start
    if byte_range is not None:
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{file.size}"
    return response


@bp.get("/api/whoami-v2")
@requires("account:read")
def whoami() -> Response:
    principal = current_principal()
    user = principal.user
    if user is None:
        raise Unauthorized("Invalid credentials in Authorization header")
    membership = user.membership
    orgs = []
    if membership is not None:
        orgs.append(
            {
                "type": "org",
                "name": membership.institution.slug,
                "fullname": membership.institution.name,
                "roleInOrg": membership.role,
            }
        )
    auth: dict[str, Any] = {"type": "session"}
    if principal.token is not None:
        auth = {
            "type": "access_token",
            "accessToken": {
                "displayName": principal.token.name,
                "role": principal.token.scope,
                "createdAt": iso(principal.token.created_at),
                "expiresAt": iso(principal.token.expires_at),
            },
        }
    return jsonify(
        {
            "type": "user",
            "id": str(user.id),
            "name": user.email.split("@", 1)[0],
            "fullname": user.display_name,
            "email": user.email,
            "emailVerified": user.email_verified_at is not None,
            "isRegistryAdmin": user.is_registry_admin,
            "orgs": orgs,
            "auth": auth,
        }
    )
