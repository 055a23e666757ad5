"""What every admin queue page shares: the page asked for, the way back to it after a
decision, in-place answers for the queue script, and bulk decisions.

A decision posted by ``queue.js`` (header ``X-Requested-With: fetch``) is answered with
JSON and the page updates the item where it stands; without the script the browser is sent
back to the same page, filter and position (``#item-…`` of the next item), never the top.
"""

from __future__ import annotations

from typing import Any

from flask import Response, flash, g, jsonify, redirect, request, url_for

from registry.access.rules import SCOPE_RANK
from registry.access.seam import authorize, current_principal, requires
from registry.context import current_registry
from registry.errors import BadRequest, RegistryError
from registry.publishing import signing
from registry.queues import decisions, listing
from registry.queues.paging import QueueQuery
from registry.web.blueprint import bp
from registry.web.forms import safe_next, text_field

QUEUE_ENDPOINTS = {
    "credentials": "web.admin_credentials",
    "trainings": "web.admin_trainings",
    "access-requests": "web.admin_requests",
    "reviews": "web.admin_reviews",
}


def page_query(statuses: tuple[str, ...], default: str = "pending") -> QueueQuery:
    """The status, search, order and page from the address (bad values: say so, use defaults)."""
    try:
        return QueueQuery.from_args(request.args, statuses=statuses, default_status=default)
    except BadRequest as error:
        flash(error.message, "error")
        return QueueQuery(status=default)


def pending_counts() -> dict[str, int]:
    return listing.pending_counts(g.db, reviewer=current_principal().user)


def wants_json() -> bool:
    return request.headers.get("X-Requested-With") == "fetch"


def back_to(endpoint: str, **values: Any) -> str:
    """The queue page the form came from (same filter and page), at the next item."""
    target = safe_next(text_field("back", 2000) or None, url_for(endpoint, **values))
    anchor = text_field("anchor", 40)
    if anchor.startswith("item-") and anchor[5:].isdigit():
        target += f"#{anchor}"
    return target


def decided(message: str, endpoint: str, items: list[Any], **values: Any) -> Response:
    """The answer to a decision that went through."""
    if wants_json():
        return jsonify(
            {
                "ok": True,
                "message": message,
                "items": [{"id": item.id, "status": decisions.status_of(item)} for item in items],
                "counts": pending_counts(),
            }
        )
    flash(message, "success")
    return redirect(back_to(endpoint, **values))


def refused(error: RegistryError, endpoint: str, **values: Any) -> Response:
    """The answer to a decision that did not go through: nothing of it is kept."""
    g.db.rollback()
    if wants_json():
        response = jsonify({"ok": False, "message": error.message})
        response.status_code = error.status
        return response
    flash(error.message, "error")
    return redirect(back_to(endpoint, **values))


def _bulk(queue: str, check: Any = None, signer: Any = None) -> Response:
    endpoint = QUEUE_ENDPOINTS[queue]
    registry = current_registry()
    try:
        batch = decisions.batch(
            queue,
            request.form.getlist("ids"),
            text_field("decision", 20),
            text_field("reason", 2000),
            text_field("expires_at", 40) or None,
        )
        items = decisions.decide_batch(
            g.db,
            batch,
            policy=registry.policy,
            actor=current_principal().user,
            now=registry.now(),
            check=check or (lambda item: None),
            signer=signer,
        )
    except RegistryError as error:
        if error.status in (401, 403):
            raise
        return refused(error, endpoint)
    accepted = "published" if queue == "reviews" else "accepted"
    verb = accepted if batch.decision == "accept" else "rejected"
    noun = "item" if len(items) == 1 else "items"
    return decided(f"{len(items)} {noun} {verb}.", endpoint, items)


@bp.post("/admin/credentials/decisions")
@requires("credential:review")
def bulk_credentials() -> Response:
    return _bulk("credentials")


@bp.post("/admin/trainings/decisions")
@requires("training:review")
def bulk_trainings() -> Response:
    return _bulk("trainings")


@bp.post("/admin/access-requests/decisions")
@requires("access-request:decide", deferred=True)
def bulk_requests() -> Response:
    if not request.form.getlist("ids"):
        # Nothing to authorize item by item, and nothing will change: reviewers hear that
        # nothing was selected, anyone else is refused.
        authorize(None, action="access-request:list")
        principal = current_principal()
        needed = SCOPE_RANK[
            current_registry().policy.action_scope("access-request:decide") or "read"
        ]
        if principal.scope is not None and SCOPE_RANK.get(principal.scope, -1) < needed:
            authorize(None)  # refuses, naming the scope a token needs to decide
        g.registry_authorized = True
        return refused(BadRequest("Select at least one item to decide."), "web.admin_requests")
    return _bulk("access-requests", check=authorize)


@bp.post("/admin/reviews/decisions")
@requires("version:review")
def bulk_reviews() -> Response:
    registry = current_registry()
    return _bulk(
        "reviews",
        signer=lambda: signing.load_signer(g.db, registry.settings, registry.now()),
    )
