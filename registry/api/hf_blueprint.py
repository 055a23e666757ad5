"""The ``hf`` blueprint: the Hugging Face Hub compatible routes share it and its rules.

Revisions in hub URLs may carry slashes (``refs/heads/main``, ``refs/pr/1``; the client
percent-encodes them, the WSGI server decodes them again), so they get their own URL
converter. Token failures answer the one ``X-Error-Message`` the hub client treats as a
credentials problem (any other text on a 401 becomes "repository not found"); the real
reason stays in the JSON ``error``. Every refusal (401/403/410) also carries its reason in
an ``X-HF-Warning`` the hub client logs, the one channel that reaches the tools that print
their own text instead of the server's (docs/hf-compat.md).
"""

from __future__ import annotations

import hashlib
from urllib.parse import quote

from flask import Blueprint, Response, g, redirect, request
from flask.blueprints import BlueprintSetupState
from werkzeug.routing import BaseConverter

from registry.access.seam import authorize
from registry.errors import BadRequest, RepoNotFound, RevisionNotFound
from registry.models import Model, Version
from registry.repos import services as repos

INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
# Token failures, denials and withdrawals; not the 404s clients expect while probing.
SHOWN_STATUSES = frozenset({401, 403, 410})

bp = Blueprint("hf", __name__)


class RevisionConverter(BaseConverter):
    """One path segment, or a full git ref (``refs/{heads,tags,pr,convert}/NAME``)."""

    regex = r"refs/(?:heads|tags|pr|convert)/[^/]+|[^/]+"
    part_isolating = False


@bp.record_once
def _register_converter(state: BlueprintSetupState) -> None:
    state.app.url_map.converters["revision"] = RevisionConverter


def hub_revision(revision: str) -> str:
    """``refs/heads/main`` → ``main``, ``refs/tags/v1`` → ``v1``; other refs do not exist here."""
    if not revision.startswith("refs/"):
        return revision
    _, kind, name = (revision.split("/", 2) + ["", ""])[:3]
    if kind == "heads" and name == "main":
        return "main"
    if kind == "tags" and name:
        return name
    what = {
        "heads": "branches other than 'main'",
        "pr": "pull requests",
        "convert": "converted refs",
    }.get(kind, "such refs")
    raise RevisionNotFound(
        f"Revision {revision!r} not found: this registry has no {what}. Use 'main', a tag "
        "(see /api/models/NAMESPACE/NAME/refs) or a 40-hex commit id."
    )


class CanonicalRepo(Exception):
    """The repo exists under another spelling: redirect there, as the hub does."""

    def __init__(self, model: Model, asked: str) -> None:
        super().__init__(model.repo_id)
        self.model = model
        self.asked = asked


def hub_model(namespace: str, name: str) -> Model:
    """The model ``namespace/name``; another casing of its id redirects (307) to the real one."""
    try:
        return repos.get_model(g.db, namespace, name)
    except (BadRequest, RepoNotFound) as error:
        try:
            model = repos.find_visible_model_any_case(g.db, namespace, name)
        except BadRequest:
            raise error from None
    if model is None:
        raise RepoNotFound(
            f"Repository {namespace}/{name} not found. Check the name, or list models at "
            "/api/models."
        )
    raise CanonicalRepo(model, f"{namespace}/{name}")


def readable_revision(namespace: str, name: str, revision: str) -> tuple[Model, Version]:
    """The model (authorized for reading) and the version ``revision`` names in it."""
    model = hub_model(namespace, name)
    authorize(model)
    return model, repos.resolve_revision(g.db, model, hub_revision(revision))


@bp.errorhandler(CanonicalRepo)
def _redirect_to_canonical(error: CanonicalRepo) -> Response:
    path = request.path.replace(f"/{error.asked}/", f"/{error.model.repo_id}/", 1)
    if request.path.endswith(f"/{error.asked}"):
        path = request.path[: -len(error.asked)] + error.model.repo_id
    location = quote(path, safe="/")
    if request.query_string:
        location += "?" + request.query_string.decode("latin-1")
    response = redirect(location, code=307)
    response.autocorrect_location_header = False
    return response


@bp.after_request
def _hub_error_headers(response: Response) -> Response:
    """Refusals keep their reason where each stock tool shows one (docs/hf-compat.md)."""
    reason = response.headers.get("X-Error-Message", "")
    if response.status_code not in SHOWN_STATUSES or not reason:
        return response
    if response.headers.get("X-Error-Code") == "Unauthorized":
        response.headers["X-Error-Message"] = INVALID_CREDENTIALS
    if reason != INVALID_CREDENTIALS:
        # The hub client logs each X-HF-Warning topic once per process, as a warning line
        # even the tools that replace the error text with their own (hf CLI, transformers,
        # diffusers' subfolder loaders, peft) print.
        topic = hashlib.sha1(reason.encode(), usedforsecurity=False).hexdigest()[:12]
        response.headers["X-HF-Warning"] = f"registry-{topic}; {reason}"
    return response
