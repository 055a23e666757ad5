"""Credentials API: applications, trainings (with certificates) and DUA signatures."""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify, request

from registry.access.seam import authorize, current_principal, requires
from registry.api.bodies import parse_body
from registry.api.openapi import document
from registry.api.schemas import common
from registry.api.schemas import credentials as schemas
from registry.api.v1.blueprint import bp
from registry.api.v1.serializers import application_dict, iso, training_dict
from registry.context import current_registry
from registry.credentials import applications, duas, trainings
from registry.errors import BadRequest, NotFound, Unauthorized
from registry.models import User

LIST: dict[str, Any] = {"type": "array"}
STATUS_QUERY = {"status": {"type": "string"}}


def _user() -> User:
    user = current_principal().user
    if user is None:
        raise Unauthorized("Log in first.")
    return user


@bp.post("/credentials")
@requires("credential:apply")
@document(
    "Apply to become a credentialed researcher",
    body=schemas.ApplicationBody,
    response=common.CredentialApplication,
    status=201,
)
def apply_credential() -> tuple[Response, int]:
    fields = parse_body(schemas.ApplicationBody).model_dump()
    application = applications.apply(g.db, _user(), fields, now=current_registry().now())
    return jsonify(application_dict(application)), 201


@bp.get("/credentials")
@requires("account:read")
@document("Your credential applications", response=LIST)
def my_credentials() -> Response:
    return jsonify(
        [application_dict(a) for a in applications.list_applications(g.db, user=_user())]
    )


@bp.get("/credentials/review")
@requires("credential:review")
@document("Credential applications to review (registry admins)", response=LIST, query=STATUS_QUERY)
def credential_queue() -> Response:
    rows = applications.list_applications(g.db, status=request.args.get("status") or None)
    return jsonify([application_dict(a) for a in rows])


@bp.post("/credentials/<int:application_id>/decision")
@requires("credential:review")
@document(
    "Accept, reject (with a reason) or revoke (with a reason) an application",
    body=schemas.ReviewBody,
    response=common.CredentialApplication,
)
def decide_credential(application_id: int) -> Response:
    body = parse_body(schemas.ReviewBody)
    application = applications.decide(
        g.db,
        applications.get_application(g.db, application_id),
        decision=body.decision,
        reason=body.reason,
        actor=_user(),
        now=current_registry().now(),
    )
    return jsonify(application_dict(application))


@bp.post("/trainings")
@requires("training:submit")
@document(
    "Submit a training: multipart with a 'certificate' file (PDF/PNG/JPEG), or JSON with "
    "a verification_url; both with 'kind' and 'completed_on'",
    body=schemas.TrainingBody,
    response=common.Training,
    status=201,
)
def submit_training() -> tuple[Response, int]:
    registry = current_registry()
    if request.mimetype == "multipart/form-data":
        # Refuse oversized bodies before the form parser spools them to disk.
        request.max_content_length = trainings.MAX_CERTIFICATE_BYTES + 64 * 1024
        body = parse_body(schemas.TrainingBody, request.form.to_dict())
        upload = request.files.get("certificate")
        if upload is None:
            raise BadRequest("Attach the certificate as the multipart field 'certificate'.")
        stream, filename = upload.stream, upload.filename or ""
    else:
        body, stream, filename = parse_body(schemas.TrainingBody), None, ""
    training = trainings.submit(
        g.db,
        registry.blobs,
        _user(),
        registry.policy.training(body.kind),
        kind=body.kind,
        completed_on=body.completed_on,
        verification_url=body.verification_url,
        certificate=stream,
        filename=filename,
        now=registry.now(),
    )
    return jsonify(training_dict(training)), 201


@bp.get("/trainings")
@requires("account:read")
@document("Your trainings", response=LIST)
def my_trainings() -> Response:
    return jsonify([training_dict(t) for t in trainings.list_trainings(g.db, user=_user())])


@bp.get("/trainings/review")
@requires("training:review")
@document("Trainings to review (registry admins)", response=LIST, query=STATUS_QUERY)
def training_queue() -> Response:
    rows = trainings.list_trainings(g.db, status=request.args.get("status") or None)
    return jsonify([training_dict(t) for t in rows])


@bp.post("/trainings/<int:training_id>/decision")
@requires("training:review")
@document(
    "Accept (valid_until follows the policy) or reject (with a reason) a training",
    body=schemas.ReviewBody,
    response=common.Training,
)
def review_training(training_id: int) -> Response:
    body = parse_body(schemas.ReviewBody)
    registry = current_registry()
    training = trainings.get_training(g.db, training_id)
    training = trainings.review(
        g.db,
        training,
        registry.policy.training(training.kind),
        decision=body.decision,
        reason=body.reason,
        actor=_user(),
        now=registry.now(),
    )
    return jsonify(training_dict(training))


@bp.get("/trainings/<int:training_id>/certificate")
@requires("training:read", deferred=True)
@document(
    "Download a training certificate (its owner and registry admins)",
    response_type="application/octet-stream",
    also_produces=("application/pdf", "image/png", "image/jpeg"),
)
def training_certificate(training_id: int) -> Response:
    training = trainings.get_training(g.db, training_id)
    authorize(training)
    if not training.certificate_sha256:
        raise NotFound(f"Training {training_id} has no certificate file (it has a URL).")
    blob = current_registry().blobs.open(training.certificate_sha256)
    data = blob.read()
    blob.close()
    response = Response(
        data, mimetype=training.certificate_content_type or "application/octet-stream"
    )
    response.headers["Content-Disposition"] = (
        f'attachment; filename="training-{training.id}-certificate"'
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


def dua_dict(dua: Any, *, text: bool) -> dict[str, Any]:
    data = {"id": dua.id, "title": dua.title, "url": dua.url, "sha256": dua.sha256}
    if text:
        data["text"] = dua.text
    return data


@bp.get("/duas")
@requires("public")
@document("Data use agreements known to the registry", response=LIST)
def list_duas() -> Response:
    return jsonify([dua_dict(d, text=False) for d in current_registry().policy.duas()])


@bp.get("/duas/<dua_id>")
@requires("public")
@document("A DUA's text and its sha256", response=schemas.Dua)
def get_dua(dua_id: str) -> Response:
    dua = current_registry().policy.dua(dua_id)
    if dua is None:
        raise NotFound(f"No DUA {dua_id!r}; list them at /api/v1/duas.")
    return jsonify(dua_dict(dua, text=True))


@bp.post("/duas/<dua_id>/signatures")
@requires("dua:sign")
@document(
    "Sign a DUA with your typed full name (optionally assert the text_sha256 you read)",
    body=schemas.SignatureBody,
    response=schemas.Signature,
    status=201,
)
def sign_dua(dua_id: str) -> tuple[Response, int]:
    registry = current_registry()
    dua = registry.policy.dua(dua_id)
    if dua is None:
        raise NotFound(f"No DUA {dua_id!r}; list them at /api/v1/duas.")
    body = parse_body(schemas.SignatureBody)
    signature, created = duas.sign(
        g.db,
        _user(),
        dua,
        full_name=body.full_name,
        text_sha256=body.text_sha256,
        now=registry.now(),
    )
    data = {
        "dua": signature.dua,
        "full_name": signature.full_name,
        "signed_at": iso(signature.signed_at),
        "text_sha256": signature.text_sha256,
    }
    return jsonify(data), 201 if created else 200
