"""The sequencer: gives pending events their place in the log, in batches, and signs a
checkpoint (a Merkle tree head) for each batch with the registry's Ed25519 key.

One process seals at a time (``registry.audit.leadership``); ``registry-server audit seal``
and the background task of every ``serve`` process call ``seal_pending``. Before extending
the tree the sealer checks that the newest checkpoint in the database is one the registry
signed and that it still holds the newest checkpoint this machine's sealers signed (kept in
the instance folder, outside the database): it never signs a rolled-back or rewritten log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

import client.merkle as merkle
from registry.audit.leadership import sealer_leadership
from registry.audit.queries import iso
from registry.audit.services import event_leaf
from registry.config import ConfigError, Settings
from registry.context import Registry
from registry.models import AuditCheckpoint, AuditEvent
from registry.publishing.signing import b64, confirmed_keys, load_signer, public_raw, verify
from registry.unit_of_work import unit_of_work

log = logging.getLogger(__name__)

BATCH = 2000
WITNESS_FILE = "audit-witness.json"
WITNESS_HISTORY = 64  # checkpoints kept in the sealer's own witness file


class SealRefused(RuntimeError):
    """The log in the database does not extend what the registry signed; nothing is sealed."""


@dataclasses.dataclass
class SealReport:
    leader: bool = True
    sealed: int = 0
    checkpoints: list[int] = dataclasses.field(default_factory=list)


def seal_pending(registry: Registry, *, batch: int = BATCH, budget: float = 2.0) -> SealReport:
    """Seal pending events, ``batch`` per checkpoint, for about ``budget`` seconds at most."""
    report = SealReport()
    deadline = time.monotonic() + budget
    while True:
        # Leadership is taken first and let go last: on SQLite it must outlive the commit.
        with (
            sealer_leadership(registry.settings.database_url) as lead,
            unit_of_work(registry.sessions) as db,
        ):
            if not lead(db):
                report.leader = False
                return report
            sealed = _seal_batch(db, registry, batch)
        if sealed is None:
            return report
        checkpoint, public_key = sealed
        report.sealed += len(checkpoint.leaves) // 64
        report.checkpoints.append(checkpoint.size)
        remember(registry.settings, checkpoint_record(checkpoint), public_key)
        if time.monotonic() > deadline:
            return report


def _seal_batch(db: Session, registry: Registry, batch: int) -> tuple[AuditCheckpoint, str] | None:
    """Seal up to ``batch`` pending events: (the new checkpoint, its key's public key)."""
    pending = db.scalars(
        select(AuditEvent).where(AuditEvent.seq.is_(None)).order_by(AuditEvent.id).limit(batch)
    ).all()
    if not pending:
        return None  # the common tick: cheap, nothing else is read
    latest = latest_checkpoint(db)
    size = latest.size if latest is not None else 0
    frontier = [bytes.fromhex(h) for h in latest.frontier] if latest is not None else []
    _check_extendable(db, registry.settings, latest, frontier)
    leaves = []
    for event in pending:
        event.seq = size + len(leaves) + 1
        leaf = merkle.leaf_hash(event_leaf(event))
        frontier = merkle.frontier_append(frontier, size + len(leaves), leaf)
        leaves.append(leaf)
    now = registry.now()
    signer = load_signer(db, registry.settings, now)
    new_size, root = size + len(leaves), merkle.frontier_root(frontier)
    stamp = now.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    body = merkle.checkpoint_body(
        registry.settings.public_url, new_size, root, stamp, signer.key_id
    )
    checkpoint = AuditCheckpoint(
        size=new_size,
        root=root.hex(),
        created_at=now,
        key_id=signer.key_id,
        body=body.decode("ascii"),
        signature=signer.sign(body),
        leaves="".join(leaf.hex() for leaf in leaves),
        frontier=[h.hex() for h in frontier],
        sealed_by=f"{socket.gethostname()}/{os.getpid()}"[:200],
    )
    db.add(checkpoint)
    db.flush()
    return checkpoint, b64(public_raw(signer.private_key))


def _check_extendable(
    db: Session, settings: Settings, latest: AuditCheckpoint | None, frontier: list[bytes]
) -> None:
    """Refuse to extend a log that is not the one the registry signed."""
    top = db.scalar(select(func.max(AuditEvent.seq))) or 0
    size = latest.size if latest is not None else 0
    if top != size:
        raise SealRefused(
            f"events are numbered up to #{top} but the newest checkpoint covers {size}: the "
            "log was changed outside the registry; run registry-server audit verify"
        )
    if latest is not None:
        keys = confirmed_keys(db, settings)
        try:
            merkle.check_signature(checkpoint_record(latest), keys, verify)
        except merkle.ProofError as error:
            raise SealRefused(
                f"the newest checkpoint is not one this registry signed: {error}"
            ) from None
        if merkle.frontier_root(frontier).hex() != latest.root:
            raise SealRefused(f"checkpoint {latest.size}'s stored tree edge was altered")
    held = held_checkpoints(settings)
    if not held:
        return
    mine = merkle.parse_checkpoint(held[-1])
    if mine["size"] > size:
        raise SealRefused(
            f"the log ends at checkpoint {size} but this registry signed checkpoint "
            f"{mine['size']} ({witness_path(settings)}): events were removed; run "
            "registry-server audit verify. If the database was deliberately reset, move that "
            "file away."
        )
    same = db.scalar(select(AuditCheckpoint.root).where(AuditCheckpoint.size == mine["size"]))
    if same != mine["root"]:
        raise SealRefused(
            f"checkpoint {mine['size']} in the database differs from the one this registry "
            f"signed ({witness_path(settings)}): the log was rewritten; run "
            "registry-server audit verify"
        )


def latest_checkpoint(db: Session) -> AuditCheckpoint | None:
    return db.scalar(select(AuditCheckpoint).order_by(AuditCheckpoint.size.desc()).limit(1))


def checkpoint_record(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    """A checkpoint as served and as witnesses keep it."""
    return {
        "size": checkpoint.size,
        "root": checkpoint.root,
        "time": iso(checkpoint.created_at),
        "key_id": checkpoint.key_id,
        "body": checkpoint.body,
        "signature": checkpoint.signature,
        "algorithm": "ed25519",
    }


# The sealer's own witness file, in the instance folder ------------------------------------


def witness_path(settings: Settings) -> Path:
    return settings.instance_path / WITNESS_FILE


def held_checkpoints(settings: Settings) -> list[dict[str, Any]]:
    """The checkpoints this machine's sealers signed (oldest first); [] if none yet."""
    try:
        document = json.loads(witness_path(settings).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as error:
        raise SealRefused(
            f"{witness_path(settings)} is unreadable ({error}); fix or move it"
        ) from None
    try:
        return merkle.parse_witness(document)[1]
    except merkle.ProofError as error:
        raise SealRefused(f"{witness_path(settings)}: {error}") from None


def remember(settings: Settings, record: dict[str, Any], public_key: str) -> None:
    """Add a checkpoint this process signed to the witness file (never moving it back)."""
    path = witness_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.with_suffix(".lock")):
        held = held_checkpoints(settings)
        if held and merkle.parse_checkpoint(held[-1])["size"] >= record["size"]:
            return  # another sealer on this machine already got further
        entry = {**record, "seen_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        held = [*held, entry][-WITNESS_HISTORY:]
        keys = {**_held_keys(path), record["key_id"]: public_key}
        document = merkle.witness_document(settings.public_url, keys, held)
        temp = path.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(temp, path)


def _held_keys(path: Path) -> dict[str, str]:
    try:
        return merkle.parse_witness(json.loads(path.read_text(encoding="utf-8")))[0]
    except FileNotFoundError:
        return {}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield


def background_seal(registry: Registry) -> SealReport | None:
    """The ``serve`` task: seal what is pending; a refusal is logged once a minute."""
    try:
        return seal_pending(registry)
    except (SealRefused, ConfigError) as error:
        if time.monotonic() - _last_refusal.get(str(error), -120.0) > 60:
            log.error("audit sealing refused: %s", error)
            _last_refusal[str(error)] = time.monotonic()
        return None


_last_refusal: dict[str, float] = {}
