"""Version ids and tags are never issued twice, even after a database restore.

Every committed version id and tag also leaves a small record in the blob store
(``meta/identities/``), written just before the database commit. A database restored from a
dump older than the blob store has lost some of them; reusing one would give a fresh client
other bytes under a name it trusts (``usz/alpha@v4``). So at start-up the registry compares
the newest version id in the database with the blob store's high-water mark and refuses to
start when the database is older, unless told ``--accept-restore``
(``REGISTRY_ACCEPT_RESTORE=true``). Accepting moves the id counter past the mark, and a tag
the blob store remembers for other content is refused when published again.

No blob store call runs under the registry-wide write lock
(``registry.publishing.locks``): a transaction that holds it (a publish) writes its marks
just after its commit, and the tags retired by a restore are read once at start-up. Start-up
also writes any mark a crash or a storage outage kept from being written after a commit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from registry.config import ConfigError
from registry.errors import Conflict
from registry.models import Model, Tag, Version
from registry.publishing.locks import holds_write_lock
from registry.storage import BlobStore

log = logging.getLogger(__name__)

VERSIONS = "identities/versions"
TAGS = "identities/tags"
ACCEPTED = "identities/restore-accepted"
_PENDING = "identities.pending"
_AFTER_COMMIT = "identities.after_commit"


class RestoreRefused(ConfigError):
    """The database is older than the blob store's high-water mark."""


@dataclass
class IdentityGuard:
    """Per process: the blob store that keeps the marks, and the id floor after a restore."""

    blobs: BlobStore
    floor: int = 0  # SQLite only: new version ids start above it (PostgreSQL moves its sequence)
    # Tag marks with no tag in the database at start-up (mark name -> commit): the tags a
    # restore lost. Tags are never deleted, so no other mark can conflict with a new tag.
    retired: dict[str, str | None] = field(default_factory=dict)


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
            _refuse_retired(db, guard, tag)

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
        marks = [_mark(db, kind, obj) for kind, _id, obj in db.info.pop(_PENDING, [])]
        if holds_write_lock(db):
            db.info[_AFTER_COMMIT] = marks  # no storage call under the registry-wide lock
            return
        for name, data in marks:
            guard.blobs.put_meta(name, data)

    @event.listens_for(sessions, "after_commit")
    def _record_late(db: Session) -> None:
        for name, data in db.info.pop(_AFTER_COMMIT, []):
            try:
                guard.blobs.put_meta(name, data)
            except Exception:  # committed already: the next start writes what is missing
                log.exception("could not mark %s in the blob store; the next start will", name)

    @event.listens_for(sessions, "after_rollback")
    def _forget(db: Session) -> None:
        db.info.pop(_PENDING, None)
        db.info.pop(_AFTER_COMMIT, None)

    return guard


def _mark(db: Session, kind: str, obj: Any) -> tuple[str, bytes]:
    """The blob store record for a new version id or tag: (name, content)."""
    if kind == "version":
        return f"{VERSIONS}/{obj.id:020d}", b"{}"
    repo, commit = _tag_identity(db, obj)
    return _tag_name(repo, obj.name), json.dumps(
        {"repo": repo, "tag": obj.name, "commit": commit}
    ).encode()


def high_water_mark(blobs: BlobStore) -> int:
    """The largest version id the blob store has seen committed (0 for none)."""
    names = blobs.list_meta(VERSIONS)
    return int(names[-1].rsplit("/", 1)[-1]) if names else 0


def check_restore(
    engine: Engine, sessions: sessionmaker[Session], guard: IdentityGuard, *, accept: bool
) -> None:
    """Refuse a database older than the blob store, or (``accept``) move past the mark."""
    mark = high_water_mark(guard.blobs)
    newest = _newest_version_id(sessions)
    if newest >= mark:
        if newest > mark:  # marked after a commit that a crash or outage interrupted
            guard.blobs.put_meta(f"{VERSIONS}/{newest:020d}", b"{}")
        _load_tags(sessions, guard)
        return
    accepted = json.loads(guard.blobs.get_meta(ACCEPTED) or b"{}")
    if accepted.get("mark") == mark and newest >= int(accepted.get("newest", 0)):
        _skip_past(engine, guard, mark)  # accepted before: this restarts after that restore
        _load_tags(sessions, guard)
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
    _load_tags(sessions, guard)
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


def _load_tags(sessions: sessionmaker[Session], guard: IdentityGuard) -> None:
    """Remember the tags a restore lost, and mark the database's tags that lack a mark."""
    marked = set(guard.blobs.list_meta(TAGS))
    try:
        with sessions() as db:
            rows = db.execute(
                select(Model.namespace, Model.name, Tag.name, Version.commit)
                .join(Model, Model.id == Tag.model_id)
                .join(Version, Version.id == Tag.version_id)
            ).all()
    except DBAPIError:  # no schema yet: no tags
        return
    present = {}
    for namespace, model, name, commit in rows:
        repo = f"{namespace}/{model}"
        present[_tag_name(repo, name)] = json.dumps(
            {"repo": repo, "tag": name, "commit": commit}
        ).encode()
    for name in sorted(marked - set(present)):
        seen = guard.blobs.get_meta(name)
        guard.retired[name] = json.loads(seen).get("commit") if seen else None
    for name in sorted(set(present) - marked):
        guard.blobs.put_meta(name, present[name])


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


def tag_mark(repo: str, tag: str) -> str:
    """The blob store record that remembers ``repo@tag`` was issued."""
    return _tag_name(repo, tag)


def _tag_name(repo: str, tag: str) -> str:
    return f"{TAGS}/{hashlib.sha256(f'{repo}@{tag}'.encode()).hexdigest()}"


def _tag_identity(db: Session, tag: Tag) -> tuple[str, str | None]:
    with db.no_autoflush:
        model = db.get(Model, tag.model_id)
        version = tag.version if tag.version is not None else db.get(Version, tag.version_id)
    repo = model.repo_id if model is not None else f"model-{tag.model_id}"
    return repo, version.commit if version is not None else None


def _refuse_retired(db: Session, guard: IdentityGuard, tag: Tag) -> None:
    repo, commit = _tag_identity(db, tag)
    earlier = guard.retired.get(_tag_name(repo, tag.name))
    if earlier and earlier != commit:
        raise Conflict(
            f"{repo}@{tag.name} was issued before a database restore for other content "
            f"(commit {earlier}); clients may hold that version under this tag, so publish "
            "under a new tag"
        )
