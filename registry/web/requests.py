"""Access requests for contributor-review models: request, then follow status and reasons."""

from __future__ import annotations

from typing import Any

from flask import Response, flash, g, redirect, render_template, request, url_for

from registry.access.seam import authorize, current_principal, requires
from registry.access_requests import services as access_requests
from registry.context import current_registry
from registry.errors import RegistryError
from registry.models import Model
from registry.repos import services as repos
from registry.web.blueprint import bp
from registry.web.forms import FormErrors, form_errors

Page = str | Response | tuple[str, int]


@bp.route("/models/<namespace>/<name>/request-access", methods=["GET", "POST"])
@requires("access-request:create", deferred=True)
def request_access(namespace: str, name: str) -> Page:
    model = repos.get_model(g.db, namespace, name)
    authorize(model)
    if request.method == "GET":
        return _render_form(model, values={}, errors=None)
    registry = current_registry()
    answers = _answers(model)
    try:
        access_requests.create(
            g.db,
            current_principal().user,
            model,
            registry.policy.tier(model.tier),
            answers,
            now=registry.now(),
        )
    except RegistryError as error:
        return _render_form(model, values=answers, errors=form_errors(error)), error.status
    flash(
        f"Your request for {model.repo_id} was sent to {model.institution.name} for review.",
        "success",
    )
    return redirect(url_for("web.my_requests"))


@bp.get("/account/access-requests")
@requires("account:read")
def my_requests() -> str:
    mine = access_requests.list_requests(g.db, requester=current_principal().user)
    return render_template("requests/list.html", requests=mine, now=current_registry().now())


def _answers(model: Model) -> dict[str, Any]:
    """The form's answers in the types the model's fields declare."""
    answers: dict[str, Any] = {}
    for field in model.access_fields or []:
        key = f"fields.{field['name']}"
        if field.get("type") == "checkbox":
            answers[field["name"]] = request.form.get(key) == "yes"
        elif request.form.get(key, "") != "":
            answers[field["name"]] = request.form.get(key, "")[:5000]
    return answers


def _render_form(model: Model, *, values: dict[str, Any], errors: FormErrors | None) -> str:
    earlier = access_requests.list_requests(g.db, requester=current_principal().user, model=model)
    return render_template(
        "requests/new.html", model=model, values=values, errors=errors, earlier=earlier
    )
