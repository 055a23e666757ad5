"""The audit log for registry admins: filters, pages in recorded order and CSV export."""

from __future__ import annotations

import datetime as dt

from flask import Response, g, render_template, request
from sqlalchemy import select

from registry.access.seam import requires
from registry.audit.export import events_csv
from registry.audit.queries import EventFilter, list_events
from registry.audit.verify import verify_log
from registry.context import current_registry
from registry.models import Version
from registry.repos import services as repos
from registry.web.admin import admin_tabs
from registry.web.blueprint import bp

PAGE_SIZE = 50
FILTERS = ("actor", "model", "version", "action", "since", "until")


def _day_arg(name: str) -> dt.datetime | None:
    raw = request.args.get(name, "").strip()
    try:
        day = dt.date.fromisoformat(raw) if raw else None
    except ValueError:
        return None
    return dt.datetime.combine(day, dt.time(), dt.UTC) if day else None


def _event_filter() -> EventFilter:
    """The filters as the audit queries take them (unknown model or version: no rows)."""
    model_id = version_id = None
    repo = request.args.get("model", "").strip()
    if repo:
        namespace, _, name = repo.partition("/")
        model = repos.find_model(g.db, namespace, name) if name else None
        model_id = model.id if model is not None else -1
    commit = request.args.get("version", "").strip().lower()
    if commit:
        found = g.db.scalar(select(Version.id).where(Version.commit == commit))
        version_id = found if found is not None else -1
    until = _day_arg("until")
    return EventFilter(
        actor=request.args.get("actor", "").strip() or None,
        model_id=model_id,
        version_id=version_id,
        action=request.args.get("action", "").strip() or None,
        since=_day_arg("since"),
        until=until + dt.timedelta(days=1) if until else None,
    )


@bp.get("/admin/audit")
@requires("audit:read")
def admin_audit() -> str:
    after = max(0, request.args.get("after", 0, type=int) or 0)
    events = list_events(g.db, _event_filter(), limit=PAGE_SIZE + 1, after_id=after)
    check = verify_log(g.db, current_registry().settings) if request.args.get("verify") else None
    return render_template(
        "admin/audit.html",
        tabs=admin_tabs(),
        events=events[:PAGE_SIZE],
        next_after=events[PAGE_SIZE - 1].id if len(events) > PAGE_SIZE else None,
        filters={name: request.args.get(name, "") for name in FILTERS},
        check=check,
    )


@bp.get("/admin/audit.csv")
@requires("audit:read")
def admin_audit_csv() -> Response:
    events = list_events(g.db, _event_filter(), limit=100_000)
    response = Response("".join(events_csv(events)), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="audit.csv"'
    return response
