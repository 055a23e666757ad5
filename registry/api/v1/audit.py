"""Audit API: filtered events (registry admins), a version's downloaders (its publisher),
signed checkpoints and consistency proofs (public) and receipts for single events."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Response, g, jsonify, request
from sqlalchemy import select

from client.shared.rules import ID_MAX
from registry.access.seam import authorize, requires
from registry.api.headers import content_disposition
from registry.api.openapi import document
from registry.api.params import int_arg
from registry.api.schemas import audit as schemas
from registry.api.v1.blueprint import bp
from registry.audit import proofs
from registry.audit.export import downloaders_csv, events_csv
from registry.audit.queries import EventFilter, downloaders, event_dict, list_events
from registry.audit.sealer import checkpoint_record
from registry.audit.tags import check_filter
from registry.audit.verify import verify_log
from registry.context import current_registry
from registry.errors import BadRequest, NotFound
from registry.models import AuditEvent, Version
from registry.repos import services as repos

MAX_ID = ID_MAX  # ids and sizes are 32-bit integers in the database

AUDIT_QUERY: dict[str, dict[str, Any]] = {
    "actor": {"type": "string", "description": "email or user id"},
    "model": {"type": "string", "description": "NAMESPACE/NAME"},
    "version": {"type": "string", "description": "40-hex commit id"},
    "action": {"type": "string", "description": "a tag (version:download) or prefix (version:)"},
    "since": {"type": "string", "format": "date-time"},
    "until": {"type": "string", "format": "date-time"},
    "after": {"type": "integer", "description": "continue after this event id (next_after)"},
    "limit": {"type": "integer"},
    "format": {"enum": ["json", "csv"]},
}


def _time_arg(name: str) -> dt.datetime | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        when = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"Query parameter {name!r} must be an ISO date or date-time") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _format_arg() -> str:
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "csv"):
        raise BadRequest("Query parameter 'format' must be json or csv")
    return fmt


def _event_filter() -> EventFilter:
    model_id = version_id = None
    if request.args.get("model"):
        namespace, _, name = request.args["model"].partition("/")
        repos.check_repo_id(namespace, name)
        model = repos.find_model(g.db, namespace, name)
        model_id = model.id if model is not None else -1
    if request.args.get("version"):
        version_id = g.db.scalar(
            select(Version.id).where(Version.commit == request.args["version"])
        )
        version_id = version_id if version_id is not None else -1
    action = request.args.get("action") or None
    if action is not None:
        try:
            check_filter(action)
        except ValueError as error:
            raise BadRequest(str(error)) from None
    return EventFilter(
        actor=request.args.get("actor") or None,
        model_id=model_id,
        version_id=version_id,
        action=action,
        since=_time_arg("since"),
        until=_time_arg("until"),
    )


@bp.get("/audit")
@requires("audit:read")
@document(
    "Audit events in recorded order, sealed and pending, filtered (registry admins)",
    query=AUDIT_QUERY,
    response=schemas.Events,
    also_produces=("text/csv",),
)
def audit_events() -> Response:
    filters = _event_filter()
    fmt = _format_arg()
    limit = int_arg("limit", 100 if fmt == "json" else 10_000, minimum=1, maximum=100_000)
    after = int_arg("after", 0, minimum=0, maximum=2**62)
    events = list_events(g.db, filters, limit=limit, after_id=after)
    if fmt == "csv":
        response = Response("".join(events_csv(events)), mimetype="text/csv")
        response.headers["Content-Disposition"] = 'attachment; filename="audit.csv"'
        return response
    next_after = events[-1].id if len(events) == limit else None
    return jsonify({"events": [event_dict(e) for e in events], "next_after": next_after})


@bp.get("/audit/verify")
@requires("audit:read")
@document(
    "Check the audit log against every signed checkpoint; names what no longer matches",
    response=schemas.VerifyReport,
)
def audit_verify() -> Response:
    report = verify_log(g.db, current_registry().settings)
    first = report.first_mismatch
    return jsonify(
        {
            "ok": not report.problems,
            "sealed": report.sealed,
            "pending": report.pending,
            "checkpoints": report.checkpoints,
            "first_mismatch": str(first) if first else None,
            "problems": [
                {"seq": p.seq, "event_id": p.event_id, "problem": p.problem, "text": str(p)}
                for p in report.problems
            ],
        }
    )


CHECKPOINT = {
    "type": "object",
    "properties": {
        "size": {"type": "integer"},
        "root": {"type": "string"},
        "time": {"type": "string"},
        "key_id": {"type": "string"},
        "body": {"type": "string", "description": "the exact signed text"},
        "signature": {"type": "string", "description": "base64 Ed25519 over body"},
        "algorithm": {"const": "ed25519"},
    },
}


@bp.get("/audit/checkpoints")
@requires("public")
@document(
    "Signed checkpoints (Merkle tree heads) of the audit log, oldest first",
    query={"after": {"type": "integer"}, "limit": {"type": "integer"}},
    response=schemas.Checkpoints,
)
def audit_checkpoints() -> Response:
    after = int_arg("after", 0, minimum=0, maximum=MAX_ID)
    limit = int_arg("limit", 100, minimum=1, maximum=1000)
    rows = proofs.list_checkpoints(g.db, after=after, limit=limit)
    return jsonify(
        {
            "checkpoints": [checkpoint_record(row) for row in rows],
            "next_after": rows[-1].size if len(rows) == limit else None,
        }
    )


@bp.get("/audit/checkpoints/latest")
@requires("public")
@document("The newest signed checkpoint of the audit log", response=CHECKPOINT)
def audit_latest_checkpoint() -> Response:
    return jsonify(checkpoint_record(proofs.checkpoint(g.db)))


@bp.get("/audit/checkpoints/<int:size>")
@requires("public")
@document("The signed checkpoint covering exactly the first SIZE events", response=CHECKPOINT)
def audit_checkpoint(size: int) -> Response:
    if size > MAX_ID:
        raise NotFound(f"No audit checkpoint covers exactly {size} events")
    return jsonify(checkpoint_record(proofs.checkpoint(g.db, size)))


@bp.get("/audit/consistency")
@requires("public")
@document(
    "Proof that the log of `from` events is a prefix of checkpoint `to` (default: newest)",
    query={"from": {"type": "integer"}, "to": {"type": "integer"}},
    response=schemas.Consistency,
)
def audit_consistency() -> Response:
    if "from" not in request.args:
        raise BadRequest("Query parameter 'from' (the size of the checkpoint you hold) is required")
    old = int_arg("from", 0, minimum=1, maximum=MAX_ID)
    new = int_arg("to", 0, minimum=1, maximum=MAX_ID) if "to" in request.args else None
    return jsonify(proofs.consistency(g.db, old, new))


@bp.get("/audit/events/<int:event_id>/proof")
@requires("audit:receipt", deferred=True)
@document(
    "A receipt: the event, its Merkle leaf and its inclusion proof against a signed checkpoint",
    query={"checkpoint": {"type": "integer", "description": "a checkpoint size (default newest)"}},
    response=schemas.Receipt,
)
def audit_event_proof(event_id: int) -> Response:
    event = g.db.get(AuditEvent, event_id) if event_id <= MAX_ID else None
    authorize(event)
    if event is None:
        raise NotFound(f"No audit event {event_id}")
    size = None
    if "checkpoint" in request.args:
        size = int_arg("checkpoint", 0, minimum=1, maximum=MAX_ID)
    return jsonify(proofs.inclusion(g.db, event, size))


@bp.get("/models/<namespace>/<name>/versions/<revision>/downloads")
@requires("version:downloads", deferred=True)
@document(
    "Everyone who downloaded files of a version (its institution's publishers and admins)",
    query={"format": {"enum": ["json", "csv"]}},
    response=schemas.Downloads,
    also_produces=("text/csv",),
)
def version_downloads(namespace: str, name: str, revision: str) -> Response:
    model = repos.get_model(g.db, namespace, name)
    version = repos.resolve_revision(g.db, model, revision)
    authorize(version)
    fmt = _format_arg()
    rows = downloaders(g.db, version)
    if fmt == "csv":
        response = Response(downloaders_csv(rows), mimetype="text/csv")
        filename = f"{model.namespace}-{model.name}-{version.commit}-downloads.csv"
        response.headers["Content-Disposition"] = content_disposition(filename)
        return response
    return jsonify(
        {
            "model": model.repo_id,
            "version": version.commit,
            "state": version.state,
            "downloaders": [r.to_dict() for r in rows],
        }
    )
