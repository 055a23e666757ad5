"""The one place where routes meet the policy engine.

Every view declares the action it needs with ``@requires``. Actions that need no resource
are decided before the view runs; for the others (``deferred=True``) the view loads its
resource and calls ``authorize(resource)``. A deferred view that answers without having
called ``authorize`` is turned into an error and commits nothing: deny by default, even for a
forgetful view. The seam also ends the request's unit of work (``registry.unit_of_work``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, request

from registry.access.decision import Decision, Principal
from registry.audit.services import record_event
from registry.context import current_registry
from registry.errors import Forbidden, GatedRepo, Unauthorized
from registry.unit_of_work import finish_view

F = TypeVar("F", bound=Callable[..., Any])

ACTION_ATTR = "registry_action"
DEFERRED_ATTR = "registry_action_deferred"
# Denials of these reads answer GatedRepo, which Hugging Face clients turn into GatedRepoError.
GATED_ACTIONS = frozenset({"model:list", "model:read", "version:download"})
# Refusals of these are audited too (who tried to get which weights).
AUDITED_DENIALS = frozenset({"version:download"})


def requires(action: str, *, deferred: bool = False) -> Callable[[F], F]:
    """Declare the action a view needs; the policy engine decides it."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            g.registry_action = action
            g.registry_authorized = False
            if not deferred:
                authorize(None)
            response = current_app.make_response(view(*args, **kwargs))
            if deferred and response.status_code < 400 and not g.registry_authorized:
                return _authorization_error()
            return finish_view(response)

        setattr(wrapper, ACTION_ATTR, action)
        setattr(wrapper, DEFERRED_ATTR, deferred)
        return wrapper  # type: ignore[return-value]

    return decorate


def current_principal() -> Principal:
    return g.principal


def authorize(resource: Any, *, action: str | None = None) -> Decision:
    """Ask the policy engine about the current request; raise if it says no."""
    action = action or g.registry_action
    registry = current_registry()
    decision = registry.policy.decide(g.principal, action, resource, db=g.db, now=registry.now())
    if action == g.get("registry_action"):
        g.registry_authorized = True
    if decision.allowed:
        return decision
    error = denial(g.principal, action, decision)
    if action in AUDITED_DENIALS:
        _record_denial(action, resource, decision)
        error.keep_changes = True  # the refusal is recorded although the request fails
    raise error


def _record_denial(action: str, resource: Any, decision: Decision) -> None:
    """Audit a refused download: who tried to get which weights, and what they lacked."""
    version = resource
    record_event(
        g.db,
        f"{action}-denied",
        actor=g.principal.user,
        target=f"{version.model.repo_id}@{version.commit}",
        model_id=version.model_id,
        version_id=version.id,
        details={
            "missing": [m.requirement for m in decision.missing],
            "method": request.method,
            "path": request.path[:300],
        },
        now=current_registry().now(),
    )


def denial(principal: Principal, action: str, decision: Decision) -> Exception:
    """The exception that tells the user what is missing (401 when not logged in)."""
    base_url = current_registry().settings.public_url
    message = decision.render(base_url) or f"You may not perform {action}."
    details = {"missing": [m.to_dict() for m in decision.missing], "action": action}
    if action in GATED_ACTIONS:
        error = GatedRepo(message, details=details)
        if not principal.is_authenticated:
            error.status = 401
        return error
    if not principal.is_authenticated:
        return Unauthorized(message, details=details)
    return Forbidden(message, details=details)


def route_action(app: Flask, endpoint: str) -> str | None:
    view = app.view_functions.get(endpoint)
    return getattr(view, ACTION_ATTR, None)


def _authorization_error() -> Response:
    """Deny by default: a deferred view that never called ``authorize`` commits nothing."""
    current_app.logger.error("view %s answered without authorize()", request.endpoint)
    g.db.rollback()
    return Response(
        '{"error": "internal authorization error"}', status=500, mimetype="application/json"
    )
