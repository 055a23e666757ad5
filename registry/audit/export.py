"""CSV renderings of audit events and downloader lists."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from registry.audit.queries import Downloader, event_dict
from registry.models import AuditEvent

EVENT_COLUMNS = [
    "id",
    "seq",
    "time",
    "action",
    "actor",
    "actor_id",
    "target",
    "model_id",
    "version_id",
    "ip",
    "user_agent",
    "details",
]
DOWNLOADER_COLUMNS = [
    "user_id",
    "email",
    "display_name",
    "first_download",
    "last_download",
    "downloads",
    "files",
    "ips",
]


def _safe(value: Any) -> str:
    """Text for a CSV cell; a leading = + - @ is escaped so spreadsheets do not run it."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _rows(
    header: list[str], rows: Iterable[dict[str, Any]], *, with_header: bool = True
) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if with_header:
        writer.writerow(header)
    for row in rows:
        writer.writerow([_safe(row[c]) for c in header])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def events_csv(events: Iterable[AuditEvent], *, with_header: bool = True) -> Iterator[str]:
    """CSV lines (header first) for ``events``, produced lazily for streaming."""

    def rows() -> Iterator[dict[str, Any]]:
        for event in events:
            data = event_dict(event)
            data["details"] = json.dumps(data["details"], sort_keys=True)
            yield data

    return _rows(EVENT_COLUMNS, rows(), with_header=with_header)


def downloaders_csv(downloaders: Iterable[Downloader]) -> str:
    rows = []
    for item in downloaders:
        data = item.to_dict()
        data["files"] = " ".join(data["files"])
        data["ips"] = " ".join(data["ips"])
        rows.append(data)
    return "".join(_rows(DOWNLOADER_COLUMNS, rows))
