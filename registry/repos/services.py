"""Reading repos: looking up models, resolving revisions, listing files."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, and_, bindparam, func, or_, select
from sqlalchemy.orm import Session, aliased, selectinload

from client.shared import rules
from registry.errors import BadRequest, EntryNotFound, RepoNotFound, RevisionNotFound
from registry.models import File, Model, Tag, Version

NAMESPACE_RE, NAME_RE, TAG_RE, COMMIT_RE = (
    rules.NAMESPACE_RE,
    rules.NAME_RE,
    rules.REF_RE,
    rules.COMMIT_RE,
)
VISIBLE_STATES = ("published", "withdrawn")


def check_repo_id(namespace: str, name: str) -> None:
    """Refuse malformed repo ids before they reach a query or a path."""
    if not NAMESPACE_RE.match(namespace) or not NAME_RE.match(name) or ".." in name:
        raise BadRequest(
            f"Invalid repo id {namespace + '/' + name!r}: use NAMESPACE/NAME with letters, digits, "
            "'-', '_' and '.' (namespace lower-case)"
        )


def check_tag(tag: str) -> None:
    if not TAG_RE.match(tag) or tag == "main" or COMMIT_RE.match(tag):
        raise BadRequest(
            f"Invalid tag {tag!r}: use letters, digits, '.', '_' and '-' (not 'main', "
            "not a 40-hex commit id), at most 128 characters"
        )


def find_model(db: Session, namespace: str, name: str) -> Model | None:
    return db.scalar(select(Model).where(Model.namespace == namespace, Model.name == name))


def find_visible_model_any_case(db: Session, namespace: str, name: str) -> Model | None:
    """The published model whose id equals ``namespace/name`` ignoring case (hub ids do)."""
    check_repo_id(namespace.lower(), name)
    visible = (
        select(Version.id)
        .where(Version.model_id == Model.id, Version.state.in_(VISIBLE_STATES))
        .exists()
    )
    return db.scalar(
        select(Model)
        .where(
            func.lower(Model.namespace) == namespace.lower(),
            func.lower(Model.name) == name.lower(),
            visible,
        )
        .limit(1)
    )


def get_model(db: Session, namespace: str, name: str) -> Model:
    """The model ``namespace/name`` if it has anything published; else RepoNotFound."""
    check_repo_id(namespace, name)
    visible = (
        select(Version.id)
        .where(Version.model_id == Model.id, Version.state.in_(VISIBLE_STATES))
        .exists()
    )
    model = db.scalar(
        select(Model).where(Model.namespace == namespace, Model.name == name, visible)
    )
    if model is None:
        raise RepoNotFound(
            f"Repository {namespace}/{name} not found. Check the name, or list models at "
            "/api/models."
        )
    return model


def latest_published(
    db: Session, model: Model, *, include_withdrawn: bool = False
) -> Version | None:
    states = VISIBLE_STATES if include_withdrawn else ("published",)
    return db.scalar(
        select(Version)
        .where(Version.model_id == model.id, Version.state.in_(states))
        .order_by(Version.published_seq.desc())
        .limit(1)
    )


def latest_visible(db: Session, models: Sequence[Model]) -> dict[int, Version]:
    """Each model's newest published-or-withdrawn version, by model id, in one query.

    The same answer as ``latest_published(..., include_withdrawn=True)`` per model, for
    listings (the catalog, ``/api/models``) that would otherwise ask once per row.
    """
    ids = [model.id for model in models]
    if not ids:
        return {}
    newest = (
        select(Version.model_id, func.max(Version.published_seq).label("seq"))
        .where(Version.model_id.in_(ids), Version.state.in_(VISIBLE_STATES))
        .group_by(Version.model_id)
        .subquery()
    )
    versions = db.scalars(
        select(Version).join(
            newest,
            and_(Version.model_id == newest.c.model_id, Version.published_seq == newest.c.seq),
        )
    )
    return {version.model_id: version for version in versions}


def resolve_revision(db: Session, model: Model, revision: str) -> Version:
    """``main`` → newest published version; otherwise a tag or a 40-hex commit id."""
    version: Version | None
    if revision == "main":
        version = latest_published(db, model)
        if version is None:
            # Every version was withdrawn: resolve to the newest so reads explain why.
            version = latest_published(db, model, include_withdrawn=True)
    elif COMMIT_RE.match(revision):
        version = db.scalar(
            select(Version).where(Version.model_id == model.id, Version.commit == revision)
        )
    else:
        version = db.scalar(
            select(Version)
            .join(Tag, Tag.version_id == Version.id)
            .where(Tag.model_id == model.id, Tag.name == revision)
        )
    if version is None or version.state not in VISIBLE_STATES:
        raise RevisionNotFound(
            f"Revision {revision!r} not found in {model.repo_id}. Use 'main', a tag or a "
            "40-hex commit id."
        )
    return version


def version_files(db: Session, version: Version) -> Sequence[File]:
    return db.scalars(select(File).where(File.version_id == version.id).order_by(File.path)).all()


def version_file(db: Session, version: Version, path: str) -> File:
    check_file_path(path)
    file = db.scalar(select(File).where(File.version_id == version.id, File.path == path))
    if file is None:
        raise EntryNotFound(
            f"File {path!r} not found in {version.model.repo_id} at revision {version.commit}."
        )
    return file


def check_file_path(path: str) -> None:
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or any(p in ("", ".", "..") for p in parts)
        or any(ord(c) < 32 or ord(c) == 127 for c in path)
        or len(path) > 1024
    ):
        raise BadRequest(
            f"Invalid file path {path!r}: use a relative path without '..', '.', empty parts, "
            "backslashes or control characters"
        )


def model_versions(db: Session, model: Model) -> list[tuple[Version, list[str]]]:
    """Every version of ``model``, newest first, with its tags (two queries in all)."""
    versions = db.scalars(
        select(Version).where(Version.model_id == model.id).order_by(Version.id.desc())
    ).all()
    tags: dict[int, list[str]] = {}
    for version_id, tag in db.execute(
        select(Tag.version_id, Tag.name).where(Tag.model_id == model.id).order_by(Tag.name)
    ):
        tags.setdefault(version_id, []).append(tag)
    return [(version, tags.get(version.id, [])) for version in versions]


def version_tags(db: Session, version: Version) -> list[str]:
    return list(db.scalars(select(Tag.name).where(Tag.version_id == version.id).order_by(Tag.name)))


def search_models(
    db: Session,
    *,
    search: str | None = None,
    author: str | None = None,
    tier: str | None = None,
    limit: int | None = 100,
    offset: int = 0,
) -> Sequence[Model]:
    """Models with at least one visible version, newest first (``limit=None``: all of them)."""
    query: Select[tuple[Model]] = select(Model).where(
        select(Version.id)
        .where(Version.model_id == Model.id, Version.state.in_(VISIBLE_STATES))
        .exists()
    )
    if search:
        like = f"%{search.lower()}%"
        query = query.where(
            or_(func.lower(Model.name).like(like), func.lower(Model.namespace).like(like))
        )
    if author:
        query = query.where(Model.namespace == author)
    if tier:
        query = query.where(Model.tier == tier)
    query = query.options(selectinload(Model.institution)).order_by(Model.id.desc())
    return db.scalars(query.limit(limit).offset(offset)).all()


def _file_statement(kind: str) -> Select[tuple[Model, Version, File]]:
    """One joined query for (model, version, file); built once, reused with bound values."""
    query = (
        select(Model, Version, File)
        .join(Version, Version.model_id == Model.id)
        .join(File, File.version_id == Version.id)
        .where(
            Model.namespace == bindparam("namespace"),
            Model.name == bindparam("name"),
            File.path == bindparam("path"),
        )
    )
    if kind == "main":
        # The newest published version itself, not the newest one that has this path.
        other = aliased(Version)
        newest = (
            select(func.max(other.published_seq))
            .where(other.model_id == Model.id, other.state == "published")
            .scalar_subquery()
        )
        return query.where(Version.state == "published", Version.published_seq == newest)
    visible = Version.state.in_(VISIBLE_STATES)
    if kind == "commit":
        return query.where(Version.commit == bindparam("revision"), visible)
    return query.join(Tag, Tag.version_id == Version.id).where(
        Tag.model_id == Model.id, Tag.name == bindparam("revision"), visible
    )


_FILE_STATEMENTS = {kind: _file_statement(kind) for kind in ("main", "commit", "tag")}


def lookup_file(
    db: Session, namespace: str, name: str, revision: str, path: str
) -> tuple[Model, Version, File]:
    """The hot path of downloads: one query when everything exists.

    When it finds nothing, the step-by-step lookups run to raise the precise error
    (RepoNotFound, RevisionNotFound or EntryNotFound).
    """
    check_repo_id(namespace, name)
    check_file_path(path)
    kind = "main" if revision == "main" else "commit" if COMMIT_RE.match(revision) else "tag"
    row = db.execute(
        _FILE_STATEMENTS[kind],
        {"namespace": namespace, "name": name, "path": path, "revision": revision},
    ).first()
    if row is not None:
        return row[0], row[1], row[2]
    model = get_model(db, namespace, name)
    version = resolve_revision(db, model, revision)
    try:
        file = version_file(db, version, path)
    except EntryNotFound as error:
        error.headers["X-Repo-Commit"] = version.commit or ""
        raise
    return model, version, file
