"""Signed checkpoints as served, inclusion proofs (receipts) and consistency proofs.

Proofs are built from the leaf hashes the checkpoints carry (authenticated by their signed
roots) and the event as the database holds it now, so a receipt for an edited event does
not verify. Building one reads every leaf hash up to the checkpoint (64 bytes per event):
fine for hundreds of thousands of events; cache complete subtrees before a million.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import client.merkle as merkle
from registry.audit.queries import event_dict
from registry.audit.sealer import checkpoint_record, latest_checkpoint
from registry.audit.services import event_leaf
from registry.errors import Conflict, NotFound
from registry.models import AuditCheckpoint, AuditEvent


class EventPending(Conflict):
    """The event is recorded but not sealed yet (the sealer runs within seconds)."""

    code = "EventPending"


class AuditLogMismatch(Conflict):
    """The stored log no longer matches what was signed; ``audit verify`` says where."""

    code = "AuditLogMismatch"


def checkpoint(db: Session, size: int | None = None) -> AuditCheckpoint:
    """The checkpoint covering exactly ``size`` events, or the newest one."""
    found = (
        latest_checkpoint(db)
        if size is None
        else db.scalar(select(AuditCheckpoint).where(AuditCheckpoint.size == size))
    )
    if found is None:
        raise NotFound(
            "No audit checkpoint has been signed yet."
            if size is None
            else f"No audit checkpoint covers exactly {size} events; GET /api/v1/audit/checkpoints "
            "lists them."
        )
    return found


def list_checkpoints(db: Session, *, after: int = 0, limit: int = 100) -> Sequence[AuditCheckpoint]:
    """Checkpoints in order of size, starting after size ``after``."""
    return db.scalars(
        select(AuditCheckpoint)
        .where(AuditCheckpoint.size > after)
        .order_by(AuditCheckpoint.size)
        .limit(limit)
    ).all()


def split_leaves(text: str) -> list[bytes]:
    return [bytes.fromhex(text[i : i + 64]) for i in range(0, len(text), 64)]


def leaves_upto(db: Session, size: int) -> list[bytes]:
    """The leaf hashes of events 1..``size`` as the checkpoints recorded them."""
    leaves: list[bytes] = []
    rows = db.execute(
        select(AuditCheckpoint.size, AuditCheckpoint.leaves)
        .where(AuditCheckpoint.size <= size)
        .order_by(AuditCheckpoint.size)
    )
    for covered, text in rows:
        leaves += split_leaves(text)
        if len(leaves) != covered:
            raise AuditLogMismatch(
                f"The stored checkpoints do not add up at {covered} events; the registry's "
                "operators must run registry-server audit verify."
            )
    return leaves


def inclusion(db: Session, event: AuditEvent, size: int | None = None) -> dict[str, Any]:
    """A receipt: the event, its leaf, and its audit path to a signed checkpoint."""
    if event.seq is None:
        raise EventPending(
            f"Audit event {event.id} is recorded but not sealed yet; ask again in a few seconds.",
            headers={"Retry-After": "2"},
        )
    head = checkpoint(db, size)
    if head.size < event.seq:
        raise NotFound(
            f"Checkpoint {head.size} does not cover event #{event.seq}; use a later one."
        )
    leaves = leaves_upto(db, head.size)
    leaf = event_leaf(event)
    if merkle.leaf_hash(leaf) != leaves[event.seq - 1]:
        raise AuditLogMismatch(
            f"Audit event {event.id} no longer matches what was sealed as #{event.seq}; the "
            "registry's operators must run registry-server audit verify."
        )
    path = merkle.inclusion_proof(leaves, event.seq - 1, head.size)
    return {
        "event": event_dict(event),
        "leaf": leaf.decode("ascii"),
        "leaf_hash": leaves[event.seq - 1].hex(),
        "index": event.seq - 1,
        "tree_size": head.size,
        "path": [h.hex() for h in path],
        "checkpoint": checkpoint_record(head),
    }


def consistency(db: Session, old: int, new: int | None = None) -> dict[str, Any]:
    """Proof that the log of ``old`` events is a prefix of the checkpoint of ``new``."""
    head = checkpoint(db, new)
    if not 0 < old <= head.size:
        raise NotFound(f"Checkpoint {head.size} cannot extend a log of {old} events.")
    leaves = leaves_upto(db, head.size)
    proof = merkle.consistency_proof(leaves, old, head.size)
    return {
        "old_size": old,
        "new_size": head.size,
        "proof": [h.hex() for h in proof],
        "checkpoint": checkpoint_record(head),
    }
