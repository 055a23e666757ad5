"""``registry-server import-folder``: publish a local diffusers folder as a new version."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.errors import BadRequest, ValidationFailed
from registry.models import File, Institution, Model, User, Version
from registry.publishing.publish import publish_version
from registry.publishing.validation import validate_folder
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
) -> Version:
    """Validate, stream every file into the blob store (hashing as it goes), publish."""
    namespace, _, name = repo_id.partition("/")
    repos.check_repo_id(namespace, name)
    if tier not in tiers:
        raise BadRequest(f"Unknown tier {tier!r}; choose one of {', '.join(sorted(tiers))}")
    if tag is not None:
        repos.check_tag(tag)
    card, problems = validate_folder(folder)
    if problems:
        raise ValidationFailed(
            f"{folder} has {len(problems)} problem(s): "
            + "; ".join(f"{p.path or '(version)'}: {p.reason}" for p in problems),
            details={"problems": [p.to_dict() for p in problems]},
        )
    institution = db.scalar(select(Institution).where(Institution.slug == namespace))
    if institution is None:
        institution = Institution(slug=namespace, name=namespace)
        db.add(institution)
        db.flush()
    model = repos.find_model(db, namespace, name)
    if model is None:
        model = Model(
            institution_id=institution.id, namespace=namespace, name=name, tier=tier, dua=dua
        )
        db.add(model)
        db.flush()
    version = Version(
        model_id=model.id,
        state="draft",
        requested_tag=tag,
        card_data=card,
        card_text=(folder / "README.md").read_text(encoding="utf-8"),
        created_by_id=actor.id if actor else None,
        created_at=now,
    )
    db.add(version)
    db.flush()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        with path.open("rb") as fh:
            info = blobs.put_stream(fh)
        record_blob(db, info.sha256, info.size, now)
        db.add(File(version_id=version.id, path=rel, size=info.size, sha256=info.sha256))
    db.flush()
    return publish_version(db, version, actor=actor, now=now)


def record_blob(db: Session, sha256: str, size: int, now: dt.datetime) -> None:
    """Remember a stored blob (for gc and fsck); a no-op when it is already known."""
    from registry.models import Blob

    if db.get(Blob, sha256) is None:
        db.add(Blob(sha256=sha256, size=size, created_at=now))
        db.flush()
