"""Audit API: filtered events (registry admins) and a version's downloaders (its publisher)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Response, g, jsonify, request
from sqlalchemy import select

from registry.access.seam import authorize, requires
from registry.api.openapi import document
from registry.api.params import int_arg
from registry.api.v1.blueprint import bp
from registry.audit.export import downloaders_csv, events_csv
from registry.audit.queries import EventFilter, downloaders, event_dict, list_events
from registry.audit.services import verify_chain
from registry.errors import BadRequest
from registry.models import Version
from registry.repos import services as repos

AUDIT_QUERY: dict[str, dict[str, Any]] = {
    "actor": {"type": "string", "description": "email or user id"},
    "model": {"type": "string", "description": "NAMESPACE/NAME"},
    "version": {"type": "string", "description": "40-hex commit id"},
    "action": {"type": "string", "description": "a tag (version:download) or prefix (version:)"},
    "since": {"type": "string", "format": "date-time"},
    "until": {"type": "string", "format": "date-time"},
    "after": {"type": "integer", "description": "continue after this sequence number"},
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
    return EventFilter(
        actor=request.args.get("actor") or None,
        model_id=model_id,
        version_id=version_id,
        action=request.args.get("action") or None,
        since=_time_arg("since"),
        until=_time_arg("until"),
    )


@bp.get("/audit")
@requires("audit:read")
@document(
    "Audit events in chain order, filtered (registry admins)",
    query=AUDIT_QUERY,
    also_produces=("text/csv",),
)
def audit_events() -> Response:
    filters = _event_filter()
    fmt = _format_arg()
    limit = int_arg("limit", 100 if fmt == "json" else 10_000, minimum=1, maximum=100_000)
    after = int_arg("after", 0, minimum=0, maximum=2**62)
    events = list_events(g.db, filters, limit=limit, after_seq=after)
    if fmt == "csv":
        response = Response("".join(events_csv(events)), mimetype="text/csv")
        response.headers["Content-Disposition"] = 'attachment; filename="audit.csv"'
        return response
    next_after = events[-1].seq if len(events) == limit else None
    return jsonify({"events": [event_dict(e) for e in events], "next_after": next_after})


@bp.get("/audit/verify")
@requires("audit:read")
@document("Check the audit hash chain; lists every edited, inserted or deleted event")
def audit_verify() -> Response:
    problems = verify_chain(g.db)
    return jsonify(
        {
            "ok": not problems,
            "problems": [
                {"seq": p.seq, "event_id": p.event_id, "problem": p.problem, "text": str(p)}
                for p in problems
            ],
        }
    )


@bp.get("/models/<namespace>/<name>/versions/<revision>/downloads")
@requires("version:downloads", deferred=True)
@document(
    "Everyone who downloaded files of a version (its institution's publishers and admins)",
    query={"format": {"enum": ["json", "csv"]}},
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
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
    return jsonify(
        {
            "model": model.repo_id,
            "version": version.commit,
            "state": version.state,
            "downloaders": [r.to_dict() for r in rows],
        }
    )
