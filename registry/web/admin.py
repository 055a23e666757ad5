"""Admin queues: credential applications, trainings, access requests, version reviews and
withdrawals. Each decision calls its service; the engine decides who may see each queue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, flash, g, redirect, render_template, request, url_for

from registry.access.seam import authorize, current_principal, requires
from registry.access_requests import services as access_requests
from registry.audit.queries import downloaders
from registry.context import current_registry
from registry.credentials import applications, trainings
from registry.errors import Forbidden, NotFound, RegistryError
from registry.models import Version
from registry.publishing import review, signing, withdrawal
from registry.repos import services as repos
from registry.web.blueprint import bp
from registry.web.cards import front_matter_rows, render_card
from registry.web.evaluation_view import evaluation_view
from registry.web.forms import text_field
from registry.web.permissions import can

# Queue tabs in order: endpoint, label, the action that shows it.
QUEUES = (
    ("web.admin_credentials", "Credentials", "credential:review"),
    ("web.admin_trainings", "Trainings", "training:review"),
    ("web.admin_requests", "Access requests", "access-request:list"),
    ("web.admin_reviews", "Version reviews", "version:review"),
    ("web.admin_users", "Users", "admin:manage"),
    ("web.admin_institutions", "Institutions", "admin:manage"),
    ("web.admin_audit", "Audit log", "audit:read"),
    ("web.admin_webhooks", "Webhooks", "webhook:manage"),
    ("web.admin_outbox", "Outbox", "admin:manage"),
)


def admin_tabs() -> list[dict[str, Any]]:
    """The queues the viewer may open, with how many items wait in each."""
    counts: dict[str, Callable[[], int]] = {
        "web.admin_credentials": lambda: len(
            applications.list_applications(g.db, status="pending")
        ),
        "web.admin_trainings": lambda: len(trainings.list_trainings(g.db, status="pending")),
        "web.admin_requests": lambda: len(
            access_requests.list_requests(
                g.db, reviewer=current_principal().user, status="pending", limit=1000
            )
        ),
        "web.admin_reviews": lambda: len(review.pending_reviews(g.db)),
    }
    tabs = []
    for endpoint, label, action in QUEUES:
        if can(action):
            count = counts[endpoint]() if endpoint in counts else None
            tabs.append({"endpoint": endpoint, "label": label, "count": count})
    return tabs


def _done(message: str, endpoint: str, **values: Any) -> Response:
    flash(message, "success")
    return redirect(url_for(endpoint, **values))


def _failed(error: RegistryError, endpoint: str, **values: Any) -> Response:
    flash(error.message, "error")
    return redirect(url_for(endpoint, **values))


def _status_filter(default: str) -> str:
    status = request.args.get("status", default)
    return status if status in ("pending", "accepted", "rejected", "revoked", "all") else default


@bp.get("/admin")
@requires("account:read")
def admin_home() -> Response:
    tabs = admin_tabs()
    if not tabs:
        raise Forbidden("Only registry and institution administrators have admin queues.")
    return redirect(url_for(tabs[0]["endpoint"]))


# Credential applications --------------------------------------------------------------------


@bp.get("/admin/credentials")
@requires("credential:review")
def admin_credentials() -> str:
    status = _status_filter("pending")
    rows = applications.list_applications(g.db, status=None if status == "all" else status)
    return render_template(
        "admin/credentials.html", tabs=admin_tabs(), applications=rows, status=status
    )


@bp.post("/admin/credentials/<int:application_id>/decision")
@requires("credential:review")
def decide_credential(application_id: int) -> Response:
    application = applications.get_application(g.db, application_id)
    decision = text_field("decision", 20)
    try:
        applications.decide(
            g.db,
            application,
            decision=decision,
            reason=text_field("reason", 2000),
            actor=current_principal().user,
            now=current_registry().now(),
        )
    except RegistryError as error:
        return _failed(error, "web.admin_credentials")
    who = application.user.email
    return _done(f"Application of {who} {application.status}.", "web.admin_credentials")


# Trainings -----------------------------------------------------------------------------------


@bp.get("/admin/trainings")
@requires("training:review")
def admin_trainings() -> str:
    status = _status_filter("pending")
    rows = trainings.list_trainings(g.db, status=None if status == "all" else status)
    specs = {spec.id: spec for spec in current_registry().policy.trainings()}
    return render_template(
        "admin/trainings.html", tabs=admin_tabs(), trainings=rows, status=status, specs=specs
    )


@bp.post("/admin/trainings/<int:training_id>/decision")
@requires("training:review")
def review_training(training_id: int) -> Response:
    registry = current_registry()
    training = trainings.get_training(g.db, training_id)
    try:
        trainings.review(
            g.db,
            training,
            registry.policy.training(training.kind),
            decision=text_field("decision", 20),
            reason=text_field("reason", 2000),
            actor=current_principal().user,
            now=registry.now(),
        )
    except RegistryError as error:
        return _failed(error, "web.admin_trainings")
    until = f", valid until {training.valid_until:%Y-%m-%d}" if training.valid_until else ""
    return _done(
        f"Training of {training.user.email} {training.status}{until}.", "web.admin_trainings"
    )


# Access requests -----------------------------------------------------------------------------


@bp.get("/admin/access-requests")
@requires("access-request:list")
def admin_requests() -> str:
    status = _status_filter("pending")
    rows = access_requests.list_requests(
        g.db,
        reviewer=current_principal().user,
        status=None if status == "all" else status,
        limit=500,
    )
    return render_template(
        "admin/access_requests.html",
        tabs=admin_tabs(),
        requests=rows,
        status=status,
        now=current_registry().now(),
    )


@bp.post("/admin/access-requests/<int:request_id>/decision")
@requires("access-request:decide", deferred=True)
def decide_request(request_id: int) -> Response:
    access_request = access_requests.get_request(g.db, request_id)
    authorize(access_request)
    try:
        access_requests.decide(
            g.db,
            access_request,
            decision=text_field("decision", 20),
            reason=text_field("reason", 2000),
            expires_at=text_field("expires_at", 40) or None,
            actor=current_principal().user,
            now=current_registry().now(),
        )
    except RegistryError as error:
        return _failed(error, "web.admin_requests")
    message = f"Request of {access_request.user.email} for {access_request.model.repo_id} "
    message += access_request.status
    if access_request.expires_at:
        message += f" until {access_request.expires_at:%Y-%m-%d}"
    return _done(message + ".", "web.admin_requests")


@bp.post("/admin/access-requests/<int:request_id>/revoke")
@requires("access-request:decide", deferred=True)
def revoke_request(request_id: int) -> Response:
    access_request = access_requests.get_request(g.db, request_id)
    authorize(access_request)
    try:
        access_requests.revoke(
            g.db,
            access_request,
            reason=text_field("reason", 2000),
            actor=current_principal().user,
            now=current_registry().now(),
        )
    except RegistryError as error:
        return _failed(error, "web.admin_requests", status="accepted")
    return _done(
        f"Access of {access_request.user.email} to {access_request.model.repo_id} revoked.",
        "web.admin_requests",
        status="accepted",
    )


# Version reviews -----------------------------------------------------------------------------


@bp.get("/admin/reviews")
@requires("version:review")
def admin_reviews() -> str:
    return render_template(
        "admin/reviews.html", tabs=admin_tabs(), versions=review.pending_reviews(g.db)
    )


def _version(version_id: int) -> Version:
    version = g.db.get(Version, version_id)
    if version is None:
        raise NotFound(f"No version #{version_id}.")
    return version


@bp.get("/admin/reviews/<int:version_id>")
@requires("version:review", deferred=True)
def admin_review(version_id: int) -> str:
    version = _version(version_id)
    authorize(version)
    return render_template(
        "admin/review.html",
        tabs=admin_tabs(),
        version=version,
        model=version.model,
        files=repos.version_files(g.db, version),
        card_html=render_card(version.card_text),
        card_rows=front_matter_rows(version.card_data),
        evaluation=evaluation_view(version.card_data),
    )


@bp.post("/admin/reviews/<int:version_id>/publish")
@requires("version:review", deferred=True)
def publish_version(version_id: int) -> Response:
    registry = current_registry()
    version = _version(version_id)
    authorize(version)
    try:
        review.publish_reviewed(
            g.db,
            version,
            signer=lambda: signing.load_signer(g.db, registry.settings, registry.now()),
            actor=current_principal().user,
            now=registry.now(),
        )
    except RegistryError as error:
        g.db.rollback()
        return _failed(error, "web.admin_review", version_id=version_id)
    model = version.model
    return _done(
        f"{model.repo_id} {version.commit[:10]} is published.",
        "web.model_page",
        namespace=model.namespace,
        name=model.name,
        revision=version.commit,
    )


@bp.post("/admin/reviews/<int:version_id>/reject")
@requires("version:review", deferred=True)
def reject_version(version_id: int) -> Response:
    version = _version(version_id)
    authorize(version)
    try:
        review.reject_version(
            g.db,
            version,
            text_field("reason", 2000),
            actor=current_principal().user,
            now=current_registry().now(),
        )
    except RegistryError as error:
        g.db.rollback()
        return _failed(error, "web.admin_review", version_id=version_id)
    return _done(f"{version.model.repo_id} version #{version.id} rejected.", "web.admin_reviews")


# Withdrawal ----------------------------------------------------------------------------------


@bp.get("/versions/<int:version_id>/withdraw")
@requires("version:downloads", deferred=True)
def withdraw_page(version_id: int) -> str:
    version = _version(version_id)
    authorize(version)
    if version.state not in repos.VISIBLE_STATES:
        raise NotFound(f"Version #{version_id} was never published.")
    return render_template(
        "admin/withdraw.html",
        version=version,
        model=version.model,
        downloaders=downloaders(g.db, version),
        can_withdraw=can("version:withdraw", version),
    )


@bp.post("/versions/<int:version_id>/withdraw")
@requires("version:withdraw", deferred=True)
def withdraw_version(version_id: int) -> Response:
    version = _version(version_id)
    authorize(version)
    try:
        withdrawal.withdraw_version(
            g.db,
            version,
            text_field("reason", 2000),
            actor=current_principal().user,
            now=current_registry().now(),
        )
    except RegistryError as error:
        g.db.rollback()
        return _failed(error, "web.withdraw_page", version_id=version_id)
    return _done(
        f"{version.model.repo_id} {version.commit[:10]} is withdrawn; downloads stopped.",
        "web.withdraw_page",
        version_id=version_id,
    )
