"""Version ids and tags are never issued twice, even after a database restore.

Every committed version id and tag also leaves a small record in the blob store
(``meta/identities/``), written just before the database commit. A database restored from a
dump older than the blob store has lost some of them; reusing one would give a fresh client
other bytes under a name it trusts (``usz/alpha@v4``). So at start-up the registry compares
the newest version id in the database with the blob store's high-water mark and refuses to
start when the database is older, unless told ``--accept-restore``
(``REGISTRY_ACCEPT_RESTORE=true``). Accepting moves the id counter past the mark, and a tag
the blob store remembers for other content is refused when published again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from registry.config import ConfigError
from registry.errors import Conflict
from registry.models import Model, Tag, Version
from registry.storage import BlobStore

log = logging.getLogger(__name__)

VERSIONS = "identities/versions"
TAGS = "identities/tags"
ACCEPTED = "identities/restore-accepted"
_PENDING = "identities.pending"


class RestoreRefused(ConfigError):
    """The database is older than the blob store's high-water mark."""


@dataclass
class IdentityGuard:
    """Per process: the blob store that keeps the marks, and the id floor after a restore."""

    blobs: BlobStore
    floor: int = 0  # SQLite only: new version ids start above it (PostgreSQL moves its sequence)


def install(sessions: sessionmaker[Session], blobs: BlobStore) -> IdentityGuard:
    """Record each committed version id and tag in the blob store; refuse a retired tag."""
    guard = IdentityGuard(blobs)

    @event.listens_for(sessions, "before_flush")
    def _check(db: Session, _context: Any, _instances: Any) -> None:
        new = list(db.new)
        versions = [v for v in new if isinstance(v, Version) and v.id is None]
        if guard.floor and versions:
            _assign_above_floor(db, guard, versions)
        for tag in (t for t in new if isinstance(t, Tag)):
            _refuse_retired(db, blobs, tag)

    @event.listens_for(sessions, "after_flush")
    def _collect(db: Session, _context: Any) -> None:
        for obj in db.new:
            if isinstance(obj, Version):
                db.info.setdefault(_PENDING, []).append(("version", obj.id, obj))
            elif isinstance(obj, Tag):
                db.info.setdefault(_PENDING, []).append(("tag", obj.id, obj))

    @event.listens_for(sessions, "before_commit")
    def _record(db: Session) -> None:
        if db.new or db.dirty:
            db.flush()
        for kind, _id, obj in db.info.pop(_PENDING, []):
            if kind == "version":
                blobs.put_meta(f"{VERSIONS}/{obj.id:020d}", b"{}")
            else:
                repo, commit = _tag_identity(db, obj)
                blobs.put_meta(_tag_name(repo, obj.name), json.dumps(
                    {"repo": repo, "tag": obj.name, "commit": commit}
                ).encode())  # fmt: skip

    @event.listens_for(sessions, "after_rollback")
    def _forget(db: Session) -> None:
        db.info.pop(_PENDING, None)

    return guard


def high_water_mark(blobs: BlobStore) -> int:
    """The largest version id the blob store has seen committed (0 for none)."""
    names = blobs.list_meta(VERSIONS)
    return int(names[-1].rsplit("/", 1)[-1]) if names else 0


def check_restore(
    engine: Engine, sessions: sessionmaker[Session], guard: IdentityGuard, *, accept: bool
) -> None:
    """Refuse a database older than the blob store, or (``accept``) move past the mark."""
    mark = high_water_mark(guard.blobs)
    if not mark:
        return
    newest = _newest_version_id(sessions)
    if newest >= mark:
        return
    accepted = json.loads(guard.blobs.get_meta(ACCEPTED) or b"{}")
    if accepted.get("mark") == mark and newest >= int(accepted.get("newest", 0)):
        _skip_past(engine, guard, mark)  # accepted before: this restarts after that restore
        return
    if not accept:
        raise RestoreRefused(
            f"The database is older than the blob store: version ids up to {mark} were issued, "
            f"but the newest version in the database is {newest or 'none'}. Restore the newest "
            "database dump (take the database first, then the blobs), or start with "
            "--accept-restore (REGISTRY_ACCEPT_RESTORE=true) to go on without the versions "
            "made after this dump: their ids and tags stay retired and are never issued again."
        )
    _skip_past(engine, guard, mark)
    guard.blobs.put_meta(
        ACCEPTED,
        json.dumps(
            {"mark": mark, "newest": newest, "at": dt.datetime.now(dt.UTC).isoformat()}
        ).encode(),
    )
    log.warning(
        "accepted a database restore: version ids %s..%s and the tags made with them stay retired",
        newest + 1,
        mark,
    )


def _newest_version_id(sessions: sessionmaker[Session]) -> int:
    try:
        with sessions() as db:
            return int(db.scalar(select(func.max(Version.id))) or 0)
    except DBAPIError:  # no schema yet: nothing in it is newer than anything
        return 0


def _skip_past(engine: Engine, guard: IdentityGuard, mark: int) -> None:
    if engine.dialect.name != "postgresql":
        guard.floor = mark
        return
    with engine.begin() as conn:
        sequence = conn.scalar(text("SELECT pg_get_serial_sequence('versions', 'id')"))
        last = conn.scalar(text(f"SELECT last_value FROM {sequence}"))  # noqa: S608 - from PG
        if int(last) < mark:  # never backwards: a restart after the restore finds it moved
            conn.execute(
                text("SELECT setval(:sequence, :mark)"), {"sequence": sequence, "mark": mark}
            )


def _assign_above_floor(db: Session, guard: IdentityGuard, versions: list[Version]) -> None:
    with db.no_autoflush:
        newest = int(db.scalar(select(func.max(Version.id))) or 0)
    if newest >= guard.floor:
        guard.floor = 0  # the database has moved past the mark: rowids continue from there
        return
    for offset, version in enumerate(versions, start=1):
        version.id = guard.floor + offset


def _tag_name(repo: str, tag: str) -> str:
    return f"{TAGS}/{hashlib.sha256(f'{repo}@{tag}'.encode()).hexdigest()}"


def _tag_identity(db: Session, tag: Tag) -> tuple[str, str | None]:
    with db.no_autoflush:
        model = db.get(Model, tag.model_id)
        version = tag.version if tag.version is not None else db.get(Version, tag.version_id)
    repo = model.repo_id if model is not None else f"model-{tag.model_id}"
    return repo, version.commit if version is not None else None


def _refuse_retired(db: Session, blobs: BlobStore, tag: Tag) -> None:
    repo, commit = _tag_identity(db, tag)
    seen = blobs.get_meta(_tag_name(repo, tag.name))
    if seen is None:
        return
    earlier = json.loads(seen).get("commit")
    if earlier and earlier != commit:
        raise Conflict(
            f"{repo}@{tag.name} was issued before a database restore for other content "
            f"(commit {earlier}); clients may hold that version under this tag, so publish "
            "under a new tag"
        )
