"""The canonical manifest of a version, and the commit id derived from it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from registry.models import File, Model, Version

MANIFEST_FORMAT = "roentgen-registry/manifest/v1"


def build_manifest(
    model: Model,
    version: Version,
    files: Sequence[File],
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
        "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in files],
        "tier": model.tier,
        "dua": model.dua,
        "base_model": f"{base.model.repo_id}@{base.commit}" if base is not None else None,
        "publisher": publisher,
        "institution": model.namespace,
        "published_at": published_at.astimezone(dt.UTC).isoformat(timespec="seconds"),
    }


def canonical_bytes(manifest: dict[str, Any]) -> bytes:
    """Sorted keys, no whitespace, ASCII: the exact bytes that get signed."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def commit_id(manifest_bytes: bytes) -> str:
    """The version's 40-hex id: the first 160 bits of the manifest's sha256."""
    return hashlib.sha256(manifest_bytes).hexdigest()[:40]
