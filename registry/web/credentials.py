"""Credentials: apply for credentialing, submit training certificates, read and sign DUAs."""

from __future__ import annotations

import dataclasses
import datetime as dt

from flask import Response, flash, g, redirect, render_template, request, url_for

from registry.access.seam import authorize, current_principal, requires
from registry.api.headers import content_disposition
from registry.context import current_registry
from registry.credentials import applications, duas, trainings
from registry.errors import NotFound, RegistryError
from registry.models import CredentialApplication, DuaSignature, Training, User
from registry.web.blueprint import bp
from registry.web.cards import render_card
from registry.web.forms import FormErrors, checked, form_errors, form_values, text_field

Page = str | Response | tuple[str, int]
APPLICATION_FIELDS = (
    "full_name",
    "affiliation",
    "job_title",
    "reference_name",
    "reference_email",
    "research_summary",
)
# Warn this long before a training expires, so a renewal can be reviewed in time.
EXPIRY_WARNING = dt.timedelta(days=60)


# The training form's fields as its labels say them (for problems that name another field).
TRAINING_LABELS = {
    "verification_url": "Verification link",
    "completed_on": "Completion date",
}


@dataclasses.dataclass(frozen=True)
class CredentialSummary:
    """A user's credential evidence, newest first, with what expires soon."""

    applications: list[CredentialApplication]
    trainings: list[Training]
    signatures: list[DuaSignature]
    now: dt.datetime

    @property
    def application(self) -> CredentialApplication | None:
        return self.applications[0] if self.applications else None

    @property
    def credentialed(self) -> bool:
        return any(a.status == "accepted" for a in self.applications)

    def days_left(self, training: Training) -> int | None:
        if training.valid_until is None:
            return None
        return (training.valid_until - self.now).days

    def expiring(self, training: Training) -> bool:
        until = training.valid_until
        return until is not None and self.now < until <= self.now + EXPIRY_WARNING

    def expired(self, training: Training) -> bool:
        return training.valid_until is not None and training.valid_until <= self.now

    @property
    def warnings(self) -> list[Training]:
        return [t for t in self.trainings if t.status == "accepted" and self.expiring(t)]


def credential_summary(user: User) -> CredentialSummary:
    return CredentialSummary(
        applications=list(applications.list_applications(g.db, user=user)),
        trainings=list(trainings.list_trainings(g.db, user=user)),
        signatures=list(duas.signatures(g.db, user)),
        now=current_registry().now(),
    )


# Credentialing application -----------------------------------------------------------------


@bp.get("/account/credentials")
@requires("account:read")
def credentials() -> str:
    return _render_application()


@bp.post("/account/credentials")
@requires("credential:apply")
def apply_credentials() -> Page:
    fields = {name: text_field(name, 6000) for name in APPLICATION_FIELDS}
    try:
        applications.apply(
            g.db,
            current_principal().user,
            fields,
            now=current_registry().now(),
        )
    except RegistryError as error:
        page = _render_application(errors=form_errors(error), values=fields)
        return page, error.status
    flash("Your application was submitted. A registry administrator will review it.", "success")
    return redirect(url_for("web.credentials"))


def _render_application(**context: object) -> str:
    context.setdefault("values", {})
    return render_template(
        "credentials/application.html",
        summary=credential_summary(current_principal().user),
        **context,
    )


# Trainings ---------------------------------------------------------------------------------


@bp.get("/account/trainings")
@requires("account:read")
def trainings_page() -> str:
    return _render_trainings()


@bp.post("/account/trainings")
@requires("training:submit")
def submit_training() -> Page:
    registry = current_registry()
    kind = text_field("kind", 100)
    upload = request.files.get("certificate")
    has_file = upload is not None and bool(upload.filename)
    try:
        trainings.submit(
            g.db,
            registry.blobs,
            current_principal().user,
            registry.policy.training(kind),
            kind=kind,
            completed_on=text_field("completed_on", 40) or None,
            verification_url=text_field("verification_url", 2000) or None,
            certificate=upload.stream if has_file else None,
            filename=upload.filename if has_file else "",
            now=registry.now(),
        )
    except RegistryError as error:
        values = form_values("kind", "completed_on", "verification_url")
        errors = form_errors(error, labels=TRAINING_LABELS)
        return _render_trainings(errors=errors, values=values), error.status
    flash("Your training was submitted for review.", "success")
    return redirect(url_for("web.trainings_page"))


@bp.get("/account/trainings/<int:training_id>/certificate")
@requires("training:read", deferred=True)
def training_certificate(training_id: int) -> Response:
    training = trainings.get_training(g.db, training_id)
    authorize(training)
    if training.certificate_sha256 is None:
        raise NotFound(f"Training {training_id} was given as a verification URL, not a file.")
    blobs = current_registry().blobs
    size = blobs.size(training.certificate_sha256)
    with blobs.open(training.certificate_sha256, 0, size) as stream:
        body = stream.read()
    response = Response(body, mimetype=training.certificate_content_type or "application/pdf")
    name = training.certificate_filename or "certificate"
    response.headers["Content-Disposition"] = content_disposition(name, "inline")
    # A certificate is user content: show it, but never let it run script.
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'; img-src 'self'"
    return response


def _render_trainings(**context: object) -> str:
    context.setdefault("values", {})
    return render_template(
        "credentials/trainings.html",
        summary=credential_summary(current_principal().user),
        specs={spec.id: spec for spec in current_registry().policy.trainings()},
        training_options=[(s.id, s.title) for s in current_registry().policy.trainings()],
        **context,
    )


# Data use agreements -------------------------------------------------------------------------


@bp.get("/duas/<dua_id>")
@requires("public")
def dua(dua_id: str) -> str:
    return _render_dua(dua_id)


@bp.post("/duas/<dua_id>")
@requires("dua:sign")
def sign_dua(dua_id: str) -> Page:
    registry = current_registry()
    spec = _dua_spec(dua_id)
    if not checked("agree"):
        errors = FormErrors("Tick the box to confirm you read the agreement.", {})
        errors.fields["agree"] = "Confirm that you have read the agreement and agree to it."
        return _render_dua(dua_id, errors=errors, values=form_values("full_name")), 422
    try:
        _signature, new = duas.sign(
            g.db,
            current_principal().user,
            spec,
            full_name=text_field("full_name", 200),
            text_sha256=text_field("text_sha256", 64) or None,
            now=registry.now(),
        )
    except RegistryError as error:
        values = form_values("full_name")
        return _render_dua(dua_id, errors=form_errors(error), values=values), error.status
    flash(
        f"You signed {spec.title}." if new else f"You had already signed {spec.title}.", "success"
    )
    return redirect(url_for("web.dua", dua_id=dua_id))


def _dua_spec(dua_id: str):  # type: ignore[no-untyped-def]
    spec = current_registry().policy.dua(dua_id)
    if spec is None:
        raise NotFound(f"No data use agreement {dua_id!r} in this registry's policies.")
    return spec


def _render_dua(dua_id: str, **context: object) -> str:
    spec = _dua_spec(dua_id)
    user = current_principal().user
    signed = None
    if user is not None:
        signed = next((s for s in duas.signatures(g.db, user) if s.dua == spec.id), None)
    context.setdefault("values", {})
    return render_template(
        "credentials/dua.html",
        spec=spec,
        text_html=render_card(spec.text),
        signed=signed,
        **context,
    )
