"""Access requests API: request access to a contributor-review model; reviewers decide."""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify, request

from registry.access.seam import authorize, current_principal, requires
from registry.access_requests import services
from registry.accounts.institutions import get_user
from registry.api.bodies import parse_body
from registry.api.openapi import document
from registry.api.params import int_arg
from registry.api.schemas import access_requests as schemas
from registry.api.v1.blueprint import bp
from registry.api.v1.serializers import iso
from registry.context import current_registry
from registry.errors import BadRequest, Unauthorized
from registry.models import AccessRequest, User
from registry.repos import services as repos

LIST: dict[str, Any] = {"type": "array"}
FILTERS = {"status": {"type": "string"}, "model": {"type": "string"}, "user": {"type": "string"}}


def _user() -> User:
    user = current_principal().user
    if user is None:
        raise Unauthorized("Log in first.")
    return user


def request_dict(req: AccessRequest) -> dict[str, Any]:
    return {
        "id": req.id,
        "model": req.model.repo_id,
        "user": req.user.email,
        "user_display_name": req.user.display_name,
        "fields": req.fields,
        "status": req.status,
        "reason": req.reason,
        "created_at": iso(req.created_at),
        "decided_at": iso(req.decided_at),
        "expires_at": iso(req.expires_at),
        "revoked_at": iso(req.revoked_at),
        "active": services.is_active_grant(req, current_registry().now()),
    }


@bp.get("/models/<namespace>/<name>/access-form")
@requires("model:read", deferred=True)
@document("The fields a model's access request asks for", response=schemas.AccessForm)
def access_form(namespace: str, name: str) -> Response:
    model = repos.get_model(g.db, namespace, name)
    authorize(model)
    tier = current_registry().policy.tier(model.tier)
    needs_request = tier is not None and "access-request-accepted" in tier.requires
    return jsonify(
        {
            "model": model.repo_id,
            "tier": model.tier,
            "requires_request": needs_request,
            "fields": model.access_fields or [],
        }
    )


@bp.post("/models/<namespace>/<name>/access-requests")
@requires("access-request:create", deferred=True)
@document(
    "Request access to a contributor-review model",
    body=schemas.NewRequestBody,
    response=schemas.NewAccessRequest,
    status=201,
)
def create_request(namespace: str, name: str) -> tuple[Response, int]:
    model = repos.get_model(g.db, namespace, name)
    authorize(model)
    body = parse_body(schemas.NewRequestBody)
    registry = current_registry()
    req = services.create(
        g.db,
        _user(),
        model,
        registry.policy.tier(model.tier),
        body.fields,
        now=registry.now(),
    )
    data = request_dict(req)
    missing = registry.policy.unmet(current_principal(), model, db=g.db, now=registry.now())
    data["still_missing"] = [
        m.to_dict() for m in missing if m.requirement != "access-request-accepted"
    ]
    return jsonify(data), 201


@bp.get("/models/<namespace>/<name>/access-requests")
@requires("access-request:list", deferred=True)
@document("Access requests for a model (its reviewers)", response=LIST, query=FILTERS)
def model_requests(namespace: str, name: str) -> Response:
    model = repos.get_model(g.db, namespace, name)
    authorize(model)
    rows = services.list_requests(g.db, model=model, **_filters(with_model=False))
    return jsonify([request_dict(r) for r in rows])


def _filters(*, with_model: bool) -> dict[str, Any]:
    filters: dict[str, Any] = {
        "status": request.args.get("status") or None,
        "limit": int_arg("limit", 100, minimum=1, maximum=1000),
        "offset": int_arg("offset", 0, minimum=0, maximum=10**9),
    }
    if request.args.get("user"):
        filters["requester"] = get_user(g.db, request.args["user"])
    if with_model and request.args.get("model"):
        namespace, _, name = request.args["model"].partition("/")
        if not name:
            raise BadRequest("model must be NAMESPACE/NAME")
        filters["model"] = repos.get_model(g.db, namespace, name)
    return filters


@bp.get("/access-requests")
@requires("access-request:list")
@document(
    "Access requests you may review (all for registry admins, else your institution's)",
    response=LIST,
    query=FILTERS,
)
def review_queue() -> Response:
    rows = services.list_requests(g.db, reviewer=_user(), **_filters(with_model=True))
    return jsonify([request_dict(r) for r in rows])


@bp.get("/me/access-requests")
@requires("account:read")
@document("Your access requests and grants", response=LIST)
def my_requests() -> Response:
    return jsonify([request_dict(r) for r in services.list_requests(g.db, requester=_user())])


@bp.get("/access-requests/<int:request_id>")
@requires("access-request:read", deferred=True)
@document("One access request (its requester and reviewers)", response=schemas.AccessRequest)
def get_request(request_id: int) -> Response:
    req = services.get_request(g.db, request_id)
    authorize(req)
    return jsonify(request_dict(req))


@bp.post("/access-requests/<int:request_id>/decision")
@requires("access-request:decide", deferred=True)
@document(
    "Accept (optionally until expires_at) or reject (with a reason) a pending request",
    body=schemas.DecisionBody,
    response=schemas.AccessRequest,
)
def decide_request(request_id: int) -> Response:
    req = services.get_request(g.db, request_id)
    authorize(req)
    body = parse_body(schemas.DecisionBody)
    req = services.decide(
        g.db,
        req,
        decision=body.decision,
        reason=body.reason,
        expires_at=body.expires_at,
        actor=_user(),
        now=current_registry().now(),
    )
    return jsonify(request_dict(req))


@bp.post("/access-requests/<int:request_id>/revoke")
@requires("access-request:decide", deferred=True)
@document(
    "Revoke an accepted grant (with a reason)",
    body=schemas.ReasonBody,
    response=schemas.AccessRequest,
)
def revoke_request(request_id: int) -> Response:
    req = services.get_request(g.db, request_id)
    authorize(req)
    body = parse_body(schemas.ReasonBody)
    req = services.revoke(
        g.db,
        req,
        reason=body.reason,
        actor=_user(),
        now=current_registry().now(),
    )
    return jsonify(request_dict(req))
