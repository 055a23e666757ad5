"""Admin queues: credential applications, trainings, access requests, version reviews and
withdrawals. Each decision calls its service; the engine decides who may see each queue."""

from __future__ import annotations

from typing import Any

from flask import Response, flash, g, redirect, render_template, url_for

from registry.access.seam import authorize, current_principal, requires
from registry.access_requests import services as access_requests
from registry.audit.queries import downloaders
from registry.context import current_registry
from registry.credentials import applications, trainings
from registry.errors import Forbidden, NotFound, RegistryError
from registry.models import Version
from registry.publishing import review, signing, withdrawal
from registry.queues import listing
from registry.repos import services as repos
from registry.web.blueprint import bp
from registry.web.cards import front_matter_rows, render_card
from registry.web.evaluation_view import evaluation_view
from registry.web.forms import text_field
from registry.web.permissions import can
from registry.web.queues import decided, page_query, pending_counts, refused

# Queue tabs in order: endpoint, label, the action that shows it, the queue it counts.
QUEUES = (
    ("web.admin_credentials", "Credentials", "credential:review", "credentials"),
    ("web.admin_trainings", "Trainings", "training:review", "trainings"),
    ("web.admin_requests", "Requests to review", "access-request:list", "access-requests"),
    ("web.admin_reviews", "Version reviews", "version:review", "reviews"),
    ("web.admin_users", "Users", "admin:manage", None),
    ("web.admin_institutions", "Institutions", "admin:manage", None),
    ("web.admin_audit", "Audit log", "audit:read", None),
    ("web.admin_webhooks", "Webhooks", "webhook:manage", None),
    ("web.admin_outbox", "Outbox", "admin:manage", None),
)


def admin_tabs() -> list[dict[str, Any]]:
    """The queues the viewer may open, with how many items wait in each."""
    counts = pending_counts() if can("access-request:list") else {}
    tabs = []
    for endpoint, label, action, queue in QUEUES:
        if can(action):
            tabs.append(
                {"endpoint": endpoint, "label": label, "queue": queue, "count": counts.get(queue)}
            )
    return tabs


def _done(message: str, endpoint: str, **values: Any) -> Response:
    flash(message, "success")
    return redirect(url_for(endpoint, **values))


def _failed(error: RegistryError, endpoint: str, **values: Any) -> Response:
    flash(error.message, "error")
    return redirect(url_for(endpoint, **values))


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
    query = page_query(listing.STATUSES)
    return render_template(
        "admin/credentials.html",
        tabs=admin_tabs(),
        page=listing.credential_applications(g.db, query),
        query=query,
        statuses=listing.STATUSES,
        bulk_url=url_for("web.bulk_credentials"),
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
        return refused(error, "web.admin_credentials")
    who = application.user.email
    return decided(
        f"Application of {who} {application.status}.", "web.admin_credentials", [application]
    )


# Trainings -----------------------------------------------------------------------------------


@bp.get("/admin/trainings")
@requires("training:review")
def admin_trainings() -> str:
    query = page_query(listing.TRAINING_STATUSES)
    specs = {spec.id: spec for spec in current_registry().policy.trainings()}
    return render_template(
        "admin/trainings.html",
        tabs=admin_tabs(),
        page=listing.trainings(g.db, query),
        query=query,
        statuses=listing.TRAINING_STATUSES,
        specs=specs,
        bulk_url=url_for("web.bulk_trainings"),
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
        return refused(error, "web.admin_trainings")
    until = f", valid until {training.valid_until:%Y-%m-%d}" if training.valid_until else ""
    return decided(
        f"Training of {training.user.email} {training.status}{until}.",
        "web.admin_trainings",
        [training],
    )


# Access requests -----------------------------------------------------------------------------


@bp.get("/admin/access-requests")
@requires("access-request:list")
def admin_requests() -> str:
    query = page_query(listing.STATUSES)
    return render_template(
        "admin/access_requests.html",
        tabs=admin_tabs(),
        page=listing.access_requests(g.db, query, reviewer=current_principal().user),
        query=query,
        statuses=listing.STATUSES,
        now=current_registry().now(),
        bulk_url=url_for("web.bulk_requests"),
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
        return refused(error, "web.admin_requests")
    message = f"Request of {access_request.user.email} for {access_request.model.repo_id} "
    message += access_request.status
    if access_request.expires_at:
        message += f" until {access_request.expires_at:%Y-%m-%d}"
    return decided(message + ".", "web.admin_requests", [access_request])


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
        return refused(error, "web.admin_requests", status="accepted")
    return decided(
        f"Access of {access_request.user.email} to {access_request.model.repo_id} revoked.",
        "web.admin_requests",
        [access_request],
        status="accepted",
    )


# Version reviews -----------------------------------------------------------------------------


@bp.get("/admin/reviews")
@requires("version:review")
def admin_reviews() -> str:
    query = page_query(listing.REVIEW_STATUSES, default="in-review")
    return render_template(
        "admin/reviews.html",
        tabs=admin_tabs(),
        page=listing.version_reviews(g.db, query),
        query=query,
        statuses=(),
        bulk_url=url_for("web.bulk_reviews"),
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
        card_html=render_card(version.card_text, top_level=3),
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
