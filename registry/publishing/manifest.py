"""The canonical manifest of a version, and the commit id derived from it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any, Protocol

from registry.models import Model, Version

MANIFEST_FORMAT = "roentgen-registry/manifest/v1"


class FileLike(Protocol):
    """A file of a version as the manifest lists it (a ``File`` or an ``UploadFile``)."""

    path: str
    size: int
    sha256: str


def build_manifest(
    model: Model,
    version: Version,
    files: Sequence[FileLike],
    *,
    publisher: str,
    published_at: dt.datetime,
) -> dict[str, Any]:
    """Everything a downloader needs to check: repo, files with sizes and sha256, terms."""
    base = version.base_version
    return {
        "format": MANIFEST_FORMAT,
        "repo": model.repo_id,
        "version": version.id,
        "tag": version.requested_tag,
        "files": [
            {"path": f.path, "size": f.size, "sha256": f.sha256}
            for f in sorted(files, key=lambda f: f.path)
        ],
        "tier": model.tier,
        "dua": model.dua,
        "base_model": f"{base.model.repo_id}@{base.commit}" if base is not None else None,
        "publisher": publisher,
        "institution": model.namespace,
        "published_at": format_time(published_at),
    }


def format_time(moment: dt.datetime) -> str:
    """UTC, ISO 8601, whole seconds: the manifest's only time format."""
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def manifest_time(manifest_text: str) -> dt.datetime:
    """The ``published_at`` of a canonical manifest."""
    return dt.datetime.fromisoformat(json.loads(manifest_text)["published_at"])
