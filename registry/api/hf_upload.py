"""Uploads from stock hub tools (``create_repo``, ``upload_folder``, ``create_commit``,
``push_to_hub``, ``hf upload``) through the Git LFS protocol.

Each hub commit becomes one draft version holding the whole tree (the newest published
version's files, then the commit's additions and deletions), and goes through the same
upload session, validation, review and signing as ``registry-client push``. One version
per commit, not per tag: a hub commit is already a complete snapshot with a message, it is
the unit the client waits on, and a version under review cannot take further commits.
The model itself is created by its first commit, in the tier its card's ``access_tier``
names (``create_repo`` only checks that the caller may create it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
from dataclasses import dataclass, field
from typing import Any

from flask import Response, g, jsonify, request

from client.shared.model_card import CARD_PATH, parse_card
from registry.access.seam import authorize, requires
from registry.api.hf_blueprint import bp, hub_revision
from registry.api.hf_lfs import SHA256_RE, holds, upload_target, uploader
from registry.api.v1.uploads import _limits as upload_limits
from registry.context import current_registry
from registry.errors import BadRequest, Conflict, PayloadTooLarge, ValidationFailed
from registry.models import Blob, Model
from registry.publishing import chunks, commit, review, sessions, signing
from registry.repos import services as repos

MAX_COMMIT_BODY = 64 * 1024**2  # inline ("regular") files only; weights go through LFS
REGULAR_MAX = 1024**2
LFS_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".onnx", ".npz", ".png", ".jpg")


@bp.post("/api/repos/create")
@requires("model:create", deferred=True)
def create_repo() -> Response:
    authorize(None)  # a publisher somewhere; the institution is checked once it is known
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise BadRequest("Send {name, organization?, type?} to create a repo")
    if body.get("type") not in (None, "model"):
        raise BadRequest("This registry holds models only; datasets and Spaces are not served")
    namespace = body.get("organization") or _home_namespace()
    if not isinstance(namespace, str):
        raise BadRequest("'organization' must be your institution's namespace")
    name = body["name"]
    institution, model = upload_target(namespace, name)
    url = f"{request.url_root.rstrip('/')}/{namespace}/{name}"
    if model is not None:
        raise Conflict("You already created this model repo", details={"url": url})
    return jsonify({"url": url, "name": f"{namespace}/{name}", "id": f"{namespace}/{name}"})


def _home_namespace() -> str:
    membership = uploader().membership
    if membership is None:
        raise BadRequest(
            "Name the repo NAMESPACE/NAME with your institution's namespace: your account "
            "publishes for no institution yet."
        )
    return membership.institution.slug


@bp.post("/api/models/<namespace>/<name>/preupload/<revision:revision>")
@requires("version:upload", deferred=True)
def preupload(namespace: str, name: str, revision: str) -> Response:
    upload_target(namespace, name)
    _main_only(revision)
    body = request.get_json(silent=True)
    files = body.get("files") if isinstance(body, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
        raise BadRequest("Send {files: [{path, sample, size}]}")
    answers = []
    for item in files:
        path, size = item.get("path"), item.get("size")
        if not isinstance(path, str) or not isinstance(size, int) or size < 0:
            raise BadRequest("Each file needs a string 'path' and a non-negative 'size'")
        repos.check_file_path(path)
        mode = "lfs" if size >= REGULAR_MAX or path.lower().endswith(LFS_SUFFIXES) else "regular"
        answers.append(
            {"path": path, "uploadMode": "regular" if size == 0 else mode, "shouldIgnore": False}
        )
    return jsonify({"files": answers, "commitOid": None})


def _main_only(revision: str) -> None:
    if hub_revision(revision) != "main":
        raise BadRequest(
            f"Commit to 'main', not {revision!r}: every commit becomes a new version of the "
            "model (tags name versions once they are published)."
        )


@dataclass
class CommitOps:
    summary: str = ""
    regular: dict[str, bytes] = field(default_factory=dict)
    lfs: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    deleted_files: set[str] = field(default_factory=set)
    deleted_folders: set[str] = field(default_factory=set)


def parse_commit(body: bytes) -> CommitOps:
    """The NDJSON lines of a hub commit; every refusal names the line and what to fix."""
    ops = CommitOps()
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise BadRequest(f"Commit line {number} is not JSON") from None
        key = item.get("key") if isinstance(item, dict) else None
        value = item.get("value") if isinstance(item, dict) else None
        if not isinstance(value, dict):
            raise BadRequest(f"Commit line {number} needs {{key, value: {{...}}}}")
        if key == "header":
            ops.summary = str(value.get("summary") or "")[:500]
            continue
        path = value.get("path")
        if not isinstance(path, str):
            raise BadRequest(f"Commit line {number} ({key}) needs a string 'path'")
        path = path.strip("/") if key == "deletedFolder" else path
        if path:
            repos.check_file_path(path)
        if key == "file":
            ops.regular[path] = _decode(number, value)
        elif key == "lfsFile":
            oid, size = value.get("oid"), value.get("size")
            if value.get("algo", "sha256") != "sha256" or not isinstance(oid, str):
                raise BadRequest(f"Commit line {number}: lfsFile needs a sha256 'oid'")
            if not SHA256_RE.match(oid) or not (size is None or isinstance(size, int)):
                raise BadRequest(f"Commit line {number}: bad oid or size for {path}")
            ops.lfs[path] = (oid, size)
        elif key == "deletedFile":
            ops.deleted_files.add(path)
        elif key == "deletedFolder":
            ops.deleted_folders.add(path)
        else:
            raise BadRequest(f"Commit line {number}: unknown operation {key!r}")
    return ops


def _decode(number: int, value: dict[str, Any]) -> bytes:
    content = value.get("content")
    if value.get("encoding", "base64") != "base64" or not isinstance(content, str):
        raise BadRequest(f"Commit line {number}: a file's content must be base64")
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"Commit line {number}: content is not valid base64") from None


@bp.post("/api/models/<namespace>/<name>/commit/<revision:revision>")
@requires("version:upload", deferred=True)
def create_commit(namespace: str, name: str, revision: str) -> Response:
    registry = current_registry()
    institution, model = upload_target(namespace, name)
    _main_only(revision)
    if request.args.get("create_pr") in ("1", "true", "True"):
        raise BadRequest("There are no pull requests here: every commit is reviewed as a version")
    if (request.content_length or 0) > MAX_COMMIT_BODY:
        raise PayloadTooLarge("A commit body over 64 MiB: send large files through LFS")
    ops = parse_commit(request.get_data(cache=False)[: MAX_COMMIT_BODY + 1])
    tree = _tree(model, ops)
    if not tree:
        raise BadRequest("This commit leaves no files; a version needs at least a model card")
    limits = upload_limits()
    tier, dua = _terms(model, ops, tree)
    req = sessions.OpenRequest(
        namespace=namespace,
        name=name,
        files=tuple(sessions.DeclaredFile(p, s, h) for p, (s, h) in sorted(tree.items())),
        tier=tier,
        dua=dua,
    )
    if model is None:
        model = sessions.new_model(institution, req, limits)
    authorize(model)
    user = uploader()
    now = registry.now()
    upload = sessions.open_session(
        g.db, registry.blobs, model, req, user=user, limits=limits, now=now
    )
    for row in sessions.session_files(g.db, upload):
        if row.complete:
            continue
        if row.path in ops.regular:
            content = ops.regular[row.path]
            info = registry.blobs.put_stream(
                io.BytesIO(content), expected_sha256=row.sha256, expected_size=row.size
            )
            chunks.mark_complete(g.db, row, info, now)
        elif holds(institution.id, institution.slug, row.sha256):
            row.complete = True
        else:
            raise ValidationFailed(
                f"{row.path}: LFS object {row.sha256} was never uploaded to this registry; "
                "run the upload again (it sends missing objects first)."
            )
    version = commit.commit_session(
        g.db,
        registry.blobs,
        upload,
        review_required=review.review_required(registry.policy, model.tier),
        max_file_size=registry.settings.max_file_size,
        signer=lambda: signing.load_signer(g.db, registry.settings, registry.now()),
        publisher_signature=None,
        publisher_key_id=None,
        actor=user,
        now=now,
    )
    oid = version.commit or hashlib.sha1(f"draft-{version.id}".encode()).hexdigest()
    base = request.url_root.rstrip("/")
    return jsonify(
        {
            "commitUrl": f"{base}/{model.repo_id}/commit/{oid}",
            "commitOid": oid,
            "versionState": version.state,
            "message": _outcome(model, version.state),
        }
    )


def _outcome(model: Model, state: str) -> str:
    if state == "in-review":
        return (
            f"{model.repo_id}: this commit is a new version awaiting review by a registry "
            "administrator; it becomes 'main' once published."
        )
    return f"{model.repo_id}: this commit was published as the newest version."


def _tree(model: Model | None, ops: CommitOps) -> dict[str, tuple[int, str]]:
    """path → (size, sha256) after applying the commit to the newest published version."""
    tree: dict[str, tuple[int, str]] = {}
    base = repos.latest_published(g.db, model) if model is not None else None
    if base is not None:
        tree = {f.path: (f.size, f.sha256) for f in repos.version_files(g.db, base)}
    for path in ops.deleted_files:
        tree.pop(path, None)
    for folder in ops.deleted_folders:
        prefix = f"{folder}/" if folder else ""
        tree = {p: v for p, v in tree.items() if not p.startswith(prefix)}
    for path, content in ops.regular.items():
        tree[path] = (len(content), hashlib.sha256(content).hexdigest())
    for path, (oid, size) in ops.lfs.items():
        if size is None:
            blob = g.db.get(Blob, oid)
            if blob is None:
                raise BadRequest(f"{path}: give the size of LFS object {oid}")
            size = blob.size
        tree[path] = (size, oid)
    return tree


def _terms(
    model: Model | None, ops: CommitOps, tree: dict[str, tuple[int, str]]
) -> tuple[str | None, str | None]:
    """A new model's tier and DUA, from the card's ``access_tier`` and ``dua``."""
    if model is not None:
        return None, None
    if CARD_PATH in ops.regular:
        text = ops.regular[CARD_PATH].decode("utf-8", errors="replace")
    elif CARD_PATH in tree:
        with current_registry().blobs.open(tree[CARD_PATH][1]) as stream:
            text = stream.read(1024**2).decode("utf-8", errors="replace")
    else:
        raise ValidationFailed(
            "A new model's first commit must include README.md (its model card) with "
            "'access_tier' and 'dua' in the front matter."
        )
    card, _body, _reasons = parse_card(text)
    tier = card.get("access_tier")
    if not isinstance(tier, str):
        raise ValidationFailed("README.md front matter needs 'access_tier' (the model's tier)")
    dua = card.get("dua")
    # "dua: none" (an open model's card) means no DUA, as registry-client push reads it
    return tier, dua if isinstance(dua, str) and dua.strip().lower() != "none" else None


@bp.post("/api/validate-yaml")
@requires("public")
def validate_yaml() -> Response:
    """The client checks README.md before a commit: answer with the registry's card rules."""
    body = request.get_json(silent=True)
    content = body.get("content") if isinstance(body, dict) else None
    if not isinstance(content, str):
        raise BadRequest("Send {content: README.md text, repoType}")
    _card, _body, reasons = parse_card(content)
    answer = jsonify({"errors": [{"message": r} for r in reasons], "warnings": []})
    if reasons:
        answer.status_code = 400
    return answer
