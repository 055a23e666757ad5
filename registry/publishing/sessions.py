"""Upload sessions: declare a version's files, resume them, abort or expire them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from client.shared import rules
from client.shared.model_card import CARD_PATH
from registry.access_requests.fields import check_new_model
from registry.audit.services import record_event
from registry.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    RegistryError,
    ValidationFailed,
)
from registry.models import Institution, Model, Tag, UploadFile, UploadSession, User, Version
from registry.publishing import ledger
from registry.publishing.validation import Problem, check_file_kind, check_path
from registry.repos import services as repos
from registry.storage import BlobNotFoundError, BlobStore

SHA256_RE = rules.SHA256_RE
MAX_FILES = 10_000
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class SessionGone(RegistryError):
    """The session was committed, aborted or expired; nothing more can be sent to it."""

    status, code = 410, "UploadSessionClosed"


@dataclasses.dataclass(frozen=True)
class DeclaredFile:
    path: str
    size: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class OpenRequest:
    """A parsed ``POST /api/v1/uploads`` body."""

    namespace: str
    name: str
    files: tuple[DeclaredFile, ...]
    tier: str | None = None
    dua: str | None = None
    access_fields: list[dict[str, Any]] | None = None
    tag: str | None = None
    base: str | None = None
    card: str | None = None


@dataclasses.dataclass(frozen=True)
class Limits:
    """What the settings and the policy allow for a new session."""

    max_file_size: int
    institution_quota: int
    session_hours: int
    tiers: frozenset[str]
    default_dua: dict[str, str | None]
    duas: frozenset[str] = frozenset()  # the DUA ids the policy declares


def parse_open_request(body: Any) -> OpenRequest:
    """Check the JSON shape; every message names the field to fix."""
    if not isinstance(body, dict):
        raise BadRequest("Send a JSON object: {repo, files: [{path, size, sha256}], ...}")
    repo = body.get("repo")
    if not isinstance(repo, str) or repo.count("/") != 1:
        raise BadRequest("'repo' must be 'namespace/name', e.g. 'mgh/cxr-sd15'")
    namespace, name = repo.split("/")
    repos.check_repo_id(namespace, name)
    raw_files = body.get("files")
    if not isinstance(raw_files, list) or not raw_files and body.get("card") is None:
        raise BadRequest("'files' must be a non-empty list of {path, size, sha256}")
    if len(raw_files) > MAX_FILES:
        raise BadRequest(f"A version may have at most {MAX_FILES} files")
    files = tuple(_declared(i, item) for i, item in enumerate(raw_files))
    fields = body.get("access_fields")
    if fields is not None and not (
        isinstance(fields, list) and all(isinstance(f, dict) for f in fields)
    ):
        raise BadRequest("'access_fields' must be a list of objects {name, label, type}")
    for key in ("tier", "dua", "tag", "base", "card"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise BadRequest(f"'{key}' must be a string")
    return OpenRequest(
        namespace=namespace,
        name=name,
        files=files,
        tier=body.get("tier"),
        dua=body.get("dua"),
        access_fields=fields,
        tag=body.get("tag"),
        base=body.get("base"),
        card=body.get("card"),
    )


def _declared(index: int, item: Any) -> DeclaredFile:
    where = f"files[{index}]"
    if not isinstance(item, dict):
        raise BadRequest(f"{where} must be an object {{path, size, sha256}}")
    path, size, sha256 = item.get("path"), item.get("size"), item.get("sha256")
    if not isinstance(path, str):
        raise BadRequest(f"{where}.path must be a string")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BadRequest(f"{where} ({path!r}): size must be a non-negative integer")
    if not isinstance(sha256, str) or not SHA256_RE.match(sha256):
        raise BadRequest(f"{where} ({path!r}): sha256 must be 64 lower-case hex characters")
    return DeclaredFile(path, size, sha256)


def find_institution(
    db: Session, slug: str, *, user: User | None = None, name: str = ""
) -> Institution:
    """The institution that owns namespace ``slug``; if none, say where ``user`` can push."""
    institution = db.scalar(select(Institution).where(Institution.slug == slug))
    if institution is None:
        membership = user.membership if user is not None else None
        if membership is not None and membership.role != "member":
            hint = f"You publish for {membership.institution.slug}: push to " + (
                f"{membership.institution.slug}/{name}." if name else "that namespace."
            )
        else:
            hint = "You publish for no institution yet."
        raise NotFound(
            f"No institution {slug!r}: the namespace of a model is its institution's slug. "
            f"{hint} A registry administrator creates institutions and adds publishers."
        )
    return institution


def new_model(institution: Institution, req: OpenRequest, limits: Limits) -> Model:
    """An unsaved model for a first upload (authorize it, then ``open_session`` adds it)."""
    if req.tier is None:
        tiers = ", ".join(sorted(limits.tiers))
        raise BadRequest(f"{req.namespace}/{req.name} is a new model: give its 'tier' ({tiers})")
    if req.tier not in limits.tiers:
        raise BadRequest(
            f"Unknown tier {req.tier!r}; choose one of {', '.join(sorted(limits.tiers))}"
        )
    dua = req.dua if req.dua is not None else limits.default_dua.get(req.tier)
    check_new_model(req.access_fields or [], dua, limits.duas)
    return Model(
        institution_id=institution.id,
        namespace=req.namespace,
        name=req.name,
        tier=req.tier,
        dua=dua,
        access_fields=req.access_fields or [],
    )


def open_session(
    db: Session,
    blobs: BlobStore,
    model: Model,
    req: OpenRequest,
    *,
    user: User,
    limits: Limits,
    now: dt.datetime,
) -> UploadSession:
    """Create the draft version and its session; files already held are complete at once."""
    declared = list(req.files)
    card_bytes = req.card.encode("utf-8") if req.card is not None else None
    if card_bytes is not None:
        declared.append(
            DeclaredFile(CARD_PATH, len(card_bytes), hashlib.sha256(card_bytes).hexdigest())
        )
    if model.id is not None:
        _check_same_terms(model, req)
    _check_declared(req, declared, limits)
    if model.id is not None:
        earlier = _committed_twin(db, model, req.tag, declared, user)
        if earlier is not None:  # the push ran again after its commit answer was lost
            return earlier
    _check_tag(db, model, req.tag)
    base = _base_version(db, req.base) if req.base else None
    _check_quota(db, model.institution_id, req.namespace, declared, limits)

    if model.id is None:
        try:
            with db.begin_nested():
                db.add(model)
        except IntegrityError:
            raise Conflict(
                f"{model.repo_id} was created by another upload a moment ago; open the session "
                "again (without tier, DUA or access fields unless they match)."
            ) from None
    version = Version(
        model_id=model.id,
        state="draft",
        requested_tag=req.tag,
        base_version_id=base.id if base is not None else None,
        created_by_id=user.id,
        created_at=now,
    )
    db.add(version)
    db.flush()
    upload = UploadSession(
        id=str(uuid.uuid4()),
        model_id=model.id,
        version_id=version.id,
        user_id=user.id,
        institution_id=model.institution_id,
        state="open",
        created_at=now,
        expires_at=now + dt.timedelta(hours=limits.session_hours),
    )
    db.add(upload)
    db.flush()
    for item in declared:
        complete = item.size == 0 or (
            ledger.institution_holds(db, model.institution_id, item.sha256)
            and stored_as_declared(blobs, item.sha256, item.size)
        )
        db.add(
            UploadFile(
                session_id=upload.id,
                path=item.path,
                size=item.size,
                sha256=item.sha256,
                complete=complete,
            )
        )
    for item in declared:
        if item.size == 0 or (card_bytes is not None and item.path == CARD_PATH):
            content = b"" if item.size == 0 else card_bytes or b""
            info = blobs.put_stream(
                io.BytesIO(content), expected_sha256=item.sha256, expected_size=item.size
            )
            ledger.record_blob(db, info.sha256, info.size, now)
    if card_bytes is not None:
        _mark_complete(db, upload.id, CARD_PATH)
    record_event(
        db,
        "upload:open",
        actor=user,
        target=f"{model.repo_id} session {upload.id}",
        model_id=model.id,
        version_id=version.id,
        details={"files": len(declared), "bytes": sum(f.size for f in declared), "tag": req.tag},
        now=now,
    )
    db.flush()
    return upload


def stored_as_declared(blobs: BlobStore, sha256: str, size: int) -> bool:
    """Whether the store holds ``sha256`` with exactly ``size`` bytes (dedup trusts no size)."""
    try:
        return blobs.size(sha256) == size
    except BlobNotFoundError:
        return False


def _committed_twin(
    db: Session, model: Model, tag: str | None, declared: list[DeclaredFile], user: User
) -> UploadSession | None:
    """The committed session of ``user``'s newest version of ``model`` if it has exactly
    these files and this tag: pushing it again then answers with that version."""
    newest = db.scalar(
        select(Version)
        .where(
            Version.model_id == model.id,
            Version.created_by_id == user.id,
            Version.state.in_(("in-review", "published")),
        )
        .order_by(Version.id.desc())
        .limit(1)
    )
    if newest is None or newest.requested_tag != tag:
        return None
    held = {(f.path, f.size, f.sha256) for f in repos.version_files(db, newest)}
    if held != {(f.path, f.size, f.sha256) for f in declared}:
        return None
    return db.scalar(
        select(UploadSession).where(
            UploadSession.version_id == newest.id, UploadSession.state == "committed"
        )
    )


def _mark_complete(db: Session, session_id: str, path: str) -> None:
    row = db.scalar(
        select(UploadFile).where(UploadFile.session_id == session_id, UploadFile.path == path)
    )
    if row is not None:
        row.complete = True


def _check_same_terms(model: Model, req: OpenRequest) -> None:
    for field, wanted in (
        ("tier", req.tier),
        ("dua", req.dua),
        ("access_fields", req.access_fields),
    ):
        if wanted is not None and wanted != getattr(model, field):
            raise Conflict(
                f"{model.repo_id} already exists with {field} {getattr(model, field)!r}; a "
                f"model's {field} is fixed when it is created (omit '{field}' for new versions)."
            )


def _check_tag(db: Session, model: Model, tag: str | None) -> None:
    if tag is None:
        return
    repos.check_tag(tag)
    if rules.ID_RE.match(tag):
        raise BadRequest(
            f"Invalid tag {tag!r}: a tag of digits only reads like a version id; use e.g. 'v{tag}'"
        )
    if model.id is not None and db.scalar(
        select(Tag.id).where(Tag.model_id == model.id, Tag.name == tag)
    ):
        raise Conflict(f"Tag {tag!r} already names a version of {model.repo_id}; choose a new tag.")


def _base_version(db: Session, ref: str) -> Version:
    repo, _, revision = ref.partition("@")
    namespace, _, name = repo.partition("/")
    repos.check_repo_id(namespace, name)
    model = repos.get_model(db, namespace, name)
    version = repos.resolve_revision(db, model, revision or "main")
    if version.state != "published":
        raise BadRequest(f"Base model {ref!r} was withdrawn; choose another base version.")
    return version


def _check_declared(req: OpenRequest, declared: list[DeclaredFile], limits: Limits) -> None:
    problems: list[Problem] = []
    seen: set[str] = set()
    for item in declared:
        if item.path in seen:
            reason = "is declared twice"
            if item.path == CARD_PATH and req.card is not None:
                reason = "is given both as 'card' and in 'files'; give it once"
            problems.append(Problem(item.path, reason))
        seen.add(item.path)
        problems += check_path(item.path) + check_file_kind(item.path)
        if item.size == 0 and item.sha256 != EMPTY_SHA256:
            problems.append(
                Problem(item.path, f"is declared empty but with sha256 {item.sha256}, which is "
                        f"not the sha256 of zero bytes ({EMPTY_SHA256})")
            )  # fmt: skip
        if item.size > limits.max_file_size:
            problems.append(
                Problem(
                    item.path,
                    f"is {item.size} bytes; the registry's limit is {limits.max_file_size} "
                    "bytes per file (shard larger weights)",
                )
            )
    if problems:
        raise ValidationFailed(
            f"{len(problems)} problem(s) with the declared files: "
            + "; ".join(str(p) for p in problems[:10]),
            details={"problems": [p.to_dict() for p in problems]},
        )


def _check_quota(
    db: Session, institution_id: int, slug: str, declared: list[DeclaredFile], limits: Limits
) -> None:
    used, held = ledger.institution_usage(db, institution_id)
    new = {f.sha256: f.size for f in declared if f.sha256 not in held}
    needed = sum(new.values())
    if used + needed > limits.institution_quota:
        raise PayloadTooLarge(
            f"Institution {slug} uses {used} of its {limits.institution_quota}-byte quota; this "
            f"upload needs {needed} more bytes. Withdraw-and-delete old versions or ask a "
            "registry admin for a larger quota."
        )


def get_session(db: Session, session_id: str) -> UploadSession:
    upload = db.get(UploadSession, session_id) if _uuid_like(session_id) else None
    if upload is None:
        raise NotFound(f"No upload session {session_id!r}.")
    return upload


def _uuid_like(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def session_files(db: Session, upload: UploadSession) -> list[UploadFile]:
    return list(
        db.scalars(
            select(UploadFile).where(UploadFile.session_id == upload.id).order_by(UploadFile.path)
        )
    )


def session_file(db: Session, upload: UploadSession, path: str) -> UploadFile:
    row = db.scalar(
        select(UploadFile).where(UploadFile.session_id == upload.id, UploadFile.path == path)
    )
    if row is None:
        raise NotFound(
            f"{path!r} is not a file of upload session {upload.id}; declare every file when "
            "opening the session."
        )
    return row


def require_open(upload: UploadSession, now: dt.datetime) -> None:
    """Refuse anything but an open, unexpired session (410 says why)."""
    if upload.state == "open" and upload.expires_at <= now:
        raise SessionGone(
            f"Upload session {upload.id} expired at {upload.expires_at:%Y-%m-%d %H:%M} UTC; "
            "open a new one (files already sent for this institution are kept for a while)."
        )
    if upload.state != "open":
        raise SessionGone(f"Upload session {upload.id} is {upload.state}; open a new one.")


def upload_key(row: UploadFile) -> str:
    """The blob store's staging key for one declared file."""
    return f"{row.session_id}.{row.id}"


def session_of_upload_key(key: str) -> str:
    return key.split(".", 1)[0]


def touch(upload: UploadSession, now: dt.datetime, hours: int) -> None:
    """Activity keeps a session alive for another ``hours``."""
    upload.expires_at = max(upload.expires_at, now + dt.timedelta(hours=hours))


def abort_session(
    db: Session,
    blobs: BlobStore,
    upload: UploadSession,
    *,
    actor: User | None,
    now: dt.datetime,
    reason: str = "aborted by the uploader",
    state: str = "aborted",
    discard: bool = True,
) -> None:
    """Close the session, mark its draft rejected and drop its staged bytes.

    Under the registry-wide lock pass ``discard=False`` (no storage call may run there):
    gc drops a closed session's staging later, outside it."""
    upload.state = state
    version = db.get(Version, upload.version_id)
    if version is not None and version.state == "draft":
        version.state = "rejected"
        version.reject_reason = reason
    for row in session_files(db, upload) if discard else ():
        if not row.complete:
            blobs.stage_discard(upload_key(row))
    record_event(
        db,
        f"upload:{'expire' if state == 'expired' else 'abort'}",
        actor=actor,
        target=f"session {upload.id}",
        model_id=upload.model_id,
        version_id=upload.version_id,
        details={"reason": reason},
        now=now,
    )
    db.flush()
