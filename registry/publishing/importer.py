"""``registry-server import-folder``: publish a local diffusers folder as a new version."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.errors import BadRequest, ValidationFailed
from registry.models import Blob, File, Institution, Model, User, Version
from registry.publishing.publish import publish_version
from registry.publishing.signing import ManifestSigner
from registry.publishing.validation import (
    FileEntry,
    Problem,
    folder_entries,
    validate_version,
)
from registry.repos import services as repos
from registry.storage import BlobStore


def import_folder(
    db: Session,
    blobs: BlobStore,
    repo_id: str,
    folder: Path,
    *,
    tier: str,
    tiers: set[str],
    tag: str | None = None,
    dua: str | None = None,
    actor: User | None = None,
    now: dt.datetime,
    signer: ManifestSigner,
    max_file_size: int | None = None,
) -> Version:
    """Validate, stream every file into the blob store (hashing as it goes), publish.

    The folder is validated before any byte is stored, and the stored blobs are validated
    again, so a file swapped on disk in between cannot slip through.
    """
    namespace, _, name = repo_id.partition("/")
    repos.check_repo_id(namespace, name)
    if tier not in tiers:
        raise BadRequest(f"Unknown tier {tier!r}; choose one of {', '.join(sorted(tiers))}")
    if tag is not None:
        repos.check_tag(tag)
    entries, walk_problems = folder_entries(folder)
    _, problems = validate_version(entries, max_file_size=max_file_size)
    _raise_if_problems(str(folder), walk_problems + problems)

    model = _model_for(db, namespace, name, tier=tier, dua=dua, now=now)
    stored: dict[str, File] = {}
    for path, entry in entries.items():
        with entry.open() as stream:
            info = blobs.put_stream(stream)
        record_blob(db, info.sha256, info.size, now)
        stored[path] = File(path=path, size=info.size, sha256=info.sha256)
    card, problems = validate_version(_blob_entries(blobs, stored), max_file_size=max_file_size)
    _raise_if_problems(str(folder), problems)

    version = Version(
        model_id=model.id,
        state="draft",
        requested_tag=tag,
        card_data=card,
        card_text=_read_text(blobs, stored["README.md"]),
        created_by_id=actor.id if actor else None,
        created_at=now,
    )
    db.add(version)
    db.flush()
    for file in stored.values():
        file.version_id = version.id
        db.add(file)
    db.flush()
    return publish_version(db, version, actor=actor, now=now, signer=signer)


def _model_for(
    db: Session, namespace: str, name: str, *, tier: str, dua: str | None, now: dt.datetime
) -> Model:
    model = repos.find_model(db, namespace, name)
    if model is not None:
        return model
    institution = db.scalar(select(Institution).where(Institution.slug == namespace))
    if institution is None:
        institution = Institution(slug=namespace, name=namespace, created_at=now)
        db.add(institution)
        db.flush()
    model = Model(
        institution_id=institution.id,
        namespace=namespace,
        name=name,
        tier=tier,
        dua=dua,
        created_at=now,
    )
    db.add(model)
    db.flush()
    return model


def _blob_entries(blobs: BlobStore, files: Mapping[str, File]) -> dict[str, FileEntry]:
    return {
        path: FileEntry(path, f.size, lambda sha=f.sha256: blobs.open(sha))
        for path, f in files.items()
    }


def _read_text(blobs: BlobStore, file: File) -> str:
    with blobs.open(file.sha256) as stream:
        return stream.read().decode("utf-8")


def _raise_if_problems(label: str, problems: list[Problem]) -> None:
    if problems:
        raise ValidationFailed(
            f"{label} has {len(problems)} problem(s): " + "; ".join(str(p) for p in problems),
            details={"problems": [p.to_dict() for p in problems]},
        )


def record_blob(db: Session, sha256: str, size: int, now: dt.datetime) -> None:
    """Remember a stored blob (for gc and fsck); a no-op when it is already known."""
    if db.get(Blob, sha256) is None:
        db.add(Blob(sha256=sha256, size=size, created_at=now))
        db.flush()
