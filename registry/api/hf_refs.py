"""Git-shaped reads the hub client and ``HfFileSystem`` use: refs, commits, paths-info.

The registry has one branch, ``main`` (the newest published version), a tag per named
version, and one "commit" per published version: its signed manifest id.
"""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify, request
from sqlalchemy import select

from registry.access.seam import requires
from registry.api.hf import link_next, tree_entries
from registry.api.hf_blueprint import bp, readable_revision
from registry.api.params import bool_arg, cursor_arg, int_arg
from registry.api.v1.serializers import iso
from registry.errors import BadRequest
from registry.models import Tag, User, Version
from registry.repos import services as repos

MAX_PATHS = 1000


@bp.get("/api/models/<namespace>/<name>/refs")
@requires("model:read", deferred=True)
def list_refs(namespace: str, name: str) -> Response:
    model, main = readable_revision(namespace, name, "main")
    tags = g.db.execute(
        select(Tag.name, Version.commit)
        .join(Version, Version.id == Tag.version_id)
        .where(Tag.model_id == model.id, Version.state.in_(repos.VISIBLE_STATES))
        .order_by(Tag.name)
    ).all()
    body: dict[str, Any] = {
        "branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": main.commit}],
        "converts": [],
        "tags": [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": c} for t, c in tags],
    }
    if bool_arg("include_prs"):
        body["pullRequests"] = []
    return jsonify(body)


@bp.get("/api/models/<namespace>/<name>/commits/<revision:revision>")
@requires("model:read", deferred=True)
def list_commits(namespace: str, name: str, revision: str) -> Response:
    model, head = readable_revision(namespace, name, revision)
    limit = int_arg("limit", 50, minimum=1, maximum=1000)
    offset = cursor_arg()
    history = g.db.scalars(
        select(Version)
        .where(
            Version.model_id == model.id,
            Version.state.in_(repos.VISIBLE_STATES),
            Version.published_seq <= (head.published_seq or 0),
        )
        .order_by(Version.published_seq.desc())
    ).all()
    authors = _authors([v.created_by_id for v in history])
    tags: dict[int, list[str]] = {}
    for version_id, tag in g.db.execute(
        select(Tag.version_id, Tag.name).where(Tag.model_id == model.id).order_by(Tag.name)
    ):
        tags.setdefault(version_id, []).append(tag)
    entries = [_commit(v, tags.get(v.id, []), authors.get(v.created_by_id)) for v in history]
    response = jsonify(entries[offset : offset + limit])
    if offset + limit < len(entries):
        link_next(response, offset + limit)
    return response


def _authors(ids: list[int | None]) -> dict[int | None, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = g.db.execute(select(User.id, User.email).where(User.id.in_(wanted)))
    return {uid: email.split("@", 1)[0] for uid, email in rows}


def _commit(version: Version, tags: list[str], author: str | None) -> dict[str, Any]:
    named = f" {', '.join(tags)}" if tags else ""
    title = f"Publish{named} ({version.commit[:8] if version.commit else ''})"
    message = f"Signed by the registry key {version.signing_key_id or '?'}."
    if version.state == "withdrawn":
        title += " [withdrawn]"
        message += f" Withdrawn on {iso(version.withdrawn_at)}: {version.withdrawn_reason}"
    return {
        "id": version.commit,
        "title": title,
        "message": message,
        "authors": [{"user": author or version.model.namespace}],
        "date": iso(version.published_at),
    }


@bp.post("/api/models/<namespace>/<name>/paths-info/<revision:revision>")
@requires("model:read", deferred=True)
def paths_info(namespace: str, name: str, revision: str) -> Response:
    model, version = readable_revision(namespace, name, revision)
    wanted = _requested_paths()
    files = repos.version_files(g.db, version)
    entries = {e["path"]: e for e in tree_entries(files, "", recursive=True)}
    response = jsonify([entries[p] for p in wanted if p in entries])
    response.headers["X-Repo-Commit"] = version.commit or ""
    return response


def _requested_paths() -> list[str]:
    """``paths`` from the form body the hub client sends (or a JSON body), checked."""
    if request.is_json:
        body = request.get_json(silent=True)
        raw = body.get("paths") if isinstance(body, dict) else None
        paths = [raw] if isinstance(raw, str) else raw
    else:
        paths = request.form.getlist("paths")
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise BadRequest("Send 'paths' as a list of file or folder paths in the repo")
    if len(paths) > MAX_PATHS:
        raise BadRequest(f"At most {MAX_PATHS} paths per paths-info request")
    cleaned = []
    for path in paths:
        path = path.strip("/")
        if path:
            repos.check_file_path(path)
            cleaned.append(path)
    return list(dict.fromkeys(cleaned))
