"""The signed manifest of a version: its canonical form, commit id and file list.

The registry publishes ``json.dumps(m, sort_keys=True, separators=(",", ":"),
ensure_ascii=True)`` and the version's commit id is the first 40 hex digits of its sha256,
so a manifest fetched for a commit id is checked against that id before anything else.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from client.cache import SHA256_RE, check_relative_path
from client.errors import IntegrityError
from client.shared.rules import canonical_bytes

MANIFEST_FORMAT = "roentgen-registry/manifest/v1"


@dataclasses.dataclass(frozen=True)
class ManifestFile:
    path: str
    size: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A manifest whose form, commit id and signatures have been checked."""

    repo: str
    commit: str
    files: tuple[ManifestFile, ...]
    published_at: dt.datetime
    data: dict[str, Any]
    record: dict[str, Any]

    @property
    def tag(self) -> str | None:
        return self.data.get("tag")

    @property
    def institution(self) -> str:
        return str(self.data.get("institution") or self.repo.split("/")[0])

    @property
    def publisher_signed(self) -> bool:
        return bool(self.record.get("publisher_signature"))


def parse_manifest(record: Mapping[str, Any], *, repo: str, commit: str | None) -> Manifest:
    """Check a manifest document's form and commit id (signatures are checked separately)."""
    text = record.get("manifest")
    if not isinstance(text, str):
        raise IntegrityError(f"The registry sent no manifest for {repo}")
    try:
        raw = text.encode("ascii")
        data = json.loads(text)
    except (UnicodeEncodeError, ValueError):
        raise IntegrityError(f"The manifest of {repo} is not canonical ASCII JSON") from None
    if not isinstance(data, dict) or canonical_bytes(data) != raw:
        raise IntegrityError(f"The manifest of {repo} is not in canonical form; refusing it")
    derived = hashlib.sha256(raw).hexdigest()[:40]
    if commit is not None and derived != commit:
        raise IntegrityError(
            f"The manifest of {repo} hashes to commit {derived}, not {commit}: the registry "
            "sent a manifest for another version"
        )
    if data.get("format") != MANIFEST_FORMAT:
        raise IntegrityError(f"Unknown manifest format {data.get('format')!r} for {repo}")
    if data.get("repo") != repo:
        raise IntegrityError(
            f"The manifest is for {data.get('repo')!r}, not {repo}: the registry sent another "
            "model's manifest"
        )
    files = _manifest_files(data.get("files"), repo)
    try:
        published = dt.datetime.fromisoformat(str(data.get("published_at")))
    except ValueError:
        raise IntegrityError(f"The manifest of {repo} has no valid published_at") from None
    if published.tzinfo is None:
        raise IntegrityError(f"The manifest of {repo} has a published_at without a time zone")
    return Manifest(repo, derived, files, published, data, dict(record))


def _manifest_files(items: Any, repo: str) -> tuple[ManifestFile, ...]:
    if not isinstance(items, list) or not items:
        raise IntegrityError(f"The manifest of {repo} lists no files")
    files, seen = [], set()
    for item in items:
        if not isinstance(item, dict):
            raise IntegrityError(f"The manifest of {repo} has a malformed file entry")
        path, size, sha = item.get("path"), item.get("size"), item.get("sha256")
        if (
            not isinstance(path, str)
            or isinstance(size, bool)
            or not isinstance(size, int)
            or size < 0
            or not isinstance(sha, str)
            or not SHA256_RE.match(sha)
        ):
            raise IntegrityError(f"The manifest of {repo} has a malformed file entry {item!r}")
        check_relative_path(path)
        if path.casefold() in seen:
            raise IntegrityError(f"The manifest of {repo} lists {path!r} twice")
        seen.add(path.casefold())
        files.append(ManifestFile(path, size, sha))
    return tuple(files)


def manifest_bytes(manifest: Manifest) -> bytes:
    return str(manifest.record["manifest"]).encode("ascii")
