"""Admin queues for scripts: the same pages, order, search and bulk decisions as the web UI.

``GET /api/v1/queues/<queue>?status=&q=&sort=oldest|newest&page=&per_page=`` answers
``{"total", "page", "pages", "per_page", "items"}``; ``POST /api/v1/queues/<queue>/decisions``
takes ``{"ids": [...], "decision": "accept"|"reject", "reason": "..."}`` and decides all of
them or none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, g, jsonify, request

from registry.access.seam import authorize, current_principal, requires
from registry.api.bodies import json_object
from registry.api.openapi import document
from registry.api.v1.access_requests import request_dict
from registry.api.v1.blueprint import bp
from registry.api.v1.serializers import application_dict, iso, training_dict, user_dict
from registry.context import current_registry
from registry.errors import BadRequest
from registry.models import Version
from registry.publishing import signing
from registry.queues import decisions, listing
from registry.queues.paging import Page, QueueQuery

QUERY = {
    "status": {"type": "string"},
    "q": {"type": "string"},
    "sort": {"enum": ["oldest", "newest"]},
    "page": {"type": "integer", "minimum": 1},
    "per_page": {"type": "integer", "minimum": 1, "maximum": 100},
}
PAGE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "total": {"type": "integer"},
        "page": {"type": "integer"},
        "pages": {"type": "integer"},
        "per_page": {"type": "integer"},
        "items": {"type": "array", "items": {"type": "object"}},
    },
}
DECIDED: dict[str, Any] = {
    "type": "object",
    "required": ["decided", "items"],
    "properties": {
        "decided": {"type": "integer"},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "status"],
                "properties": {"id": {"type": "integer"}, "status": {"type": "string"}},
            },
        },
    },
}
BATCH = {
    "type": "object",
    "required": ["ids", "decision"],
    "properties": {
        "ids": {"type": "array", "items": {"type": "integer"}, "maxItems": decisions.MAX_BATCH},
        "decision": {"enum": list(decisions.DECISIONS)},
        "reason": {"type": "string"},
        "expires_at": {"type": "string", "format": "date"},
    },
}


def _review_dict(version: Version) -> dict[str, Any]:
    return {
        "id": version.id,
        "repo": version.model.repo_id,
        "tag": version.requested_tag,
        "tier": version.model.tier,
        "publisher": version.created_by.email if version.created_by else None,
        "submitted_at": iso(version.submitted_at),
    }


def _page(page: Page[Any], serialize: Callable[[Any], dict[str, Any]]) -> Response:
    return jsonify(
        {
            "total": page.total,
            "page": page.page,
            "pages": page.pages,
            "per_page": page.per_page,
            "items": [serialize(item) for item in page.items],
        }
    )


def _query(statuses: tuple[str, ...], default: str = "pending") -> QueueQuery:
    return QueueQuery.from_args(request.args, statuses=statuses, default_status=default)


@bp.get("/queues/credentials")
@requires("credential:review")
@document("Credential applications to review, a page at a time", response=PAGE, query=QUERY)
def queue_credentials() -> Response:
    page = listing.credential_applications(g.db, _query(listing.STATUSES))
    return _page(page, application_dict)


@bp.get("/queues/trainings")
@requires("training:review")
@document("Trainings to review, a page at a time", response=PAGE, query=QUERY)
def queue_trainings() -> Response:
    return _page(listing.trainings(g.db, _query(listing.TRAINING_STATUSES)), training_dict)


@bp.get("/queues/access-requests")
@requires("access-request:list")
@document("Access requests you may decide, a page at a time", response=PAGE, query=QUERY)
def queue_access_requests() -> Response:
    page = listing.access_requests(
        g.db, _query(listing.STATUSES), reviewer=current_principal().user
    )
    return _page(page, request_dict)


@bp.get("/queues/reviews")
@requires("version:review")
@document("Versions waiting for review, a page at a time", response=PAGE, query=QUERY)
def queue_reviews() -> Response:
    page = listing.version_reviews(g.db, _query(listing.REVIEW_STATUSES, "in-review"))
    return _page(page, _review_dict)


@bp.get("/queues/users")
@requires("admin:manage")
@document(
    "Accounts, a page at a time (status: active, disabled, admins)", response=PAGE, query=QUERY
)
def queue_users() -> Response:
    return _page(listing.users(g.db, _query(listing.USER_STATUSES, "all")), user_dict)


def _decide(
    queue: str,
    check: Callable[[Any], Any] | None = None,
    signer: Callable[[], Any] | None = None,
) -> Response:
    body = json_object()
    ids = body.get("ids")
    if not isinstance(ids, list):
        raise BadRequest("ids must be a list of item ids.")
    batch = decisions.batch(
        queue, ids, body.get("decision"), body.get("reason", ""), body.get("expires_at")
    )
    registry = current_registry()
    items = decisions.decide_batch(
        g.db,
        batch,
        policy=registry.policy,
        actor=current_principal().user,
        now=registry.now(),
        check=check or (lambda item: None),
        signer=signer,
    )
    return jsonify(
        {
            "decided": len(items),
            "items": [{"id": i.id, "status": decisions.status_of(i)} for i in items],
        }
    )


@bp.post("/queues/credentials/decisions")
@requires("credential:review")
@document("Accept or reject many credential applications at once", body=BATCH, response=DECIDED)
def decide_credentials() -> Response:
    return _decide("credentials")


@bp.post("/queues/trainings/decisions")
@requires("training:review")
@document("Accept or reject many trainings at once", body=BATCH, response=DECIDED)
def decide_trainings() -> Response:
    return _decide("trainings")


@bp.post("/queues/access-requests/decisions")
@requires("access-request:decide", deferred=True)
@document("Accept or reject many access requests at once", body=BATCH, response=DECIDED)
def decide_access_requests() -> Response:
    return _decide("access-requests", check=authorize)


@bp.post("/queues/reviews/decisions")
@requires("version:review")
@document(
    "Publish (accept) or reject (with a reason) many in-review versions at once",
    body=BATCH,
    response=DECIDED,
)
def decide_reviews() -> Response:
    registry = current_registry()
    return _decide(
        "reviews", signer=lambda: signing.load_signer(g.db, registry.settings, registry.now())
    )
