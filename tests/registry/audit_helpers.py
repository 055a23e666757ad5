"""Sealing the audit log in tests, and what someone with write access to its database (and
perhaps the signing key) could do to it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from client import merkle
from registry.audit.sealer import seal_pending
from registry.audit.services import event_leaf
from registry.models import AuditCheckpoint, AuditEvent
from registry.publishing.signing import load_signer
from registry.unit_of_work import unit_of_work


def seal(registry: Any) -> Any:
    """Seal everything pending now, as the background sealer would within a second."""
    report = seal_pending(registry, budget=60.0)
    assert report.leader, "another sealer held the lock"
    return report


def sealed_events(registry: Any) -> list[AuditEvent]:
    """Every sealed event, in log order."""
    with unit_of_work(registry.sessions) as db:
        query = select(AuditEvent).where(AuditEvent.seq.isnot(None)).order_by(AuditEvent.seq)
        return list(db.scalars(query))


def rewrite_log(registry: Any, *, drop: list[int], resign: bool) -> None:
    """Delete events, renumber every later one and rebuild the checkpoints to match.

    Without the key the rebuilt checkpoints keep their old signatures (nothing better is
    possible); with it (``resign``) they are signed afresh, as a registry operator could."""
    with unit_of_work(registry.sessions) as db:
        db.execute(delete(AuditEvent).where(AuditEvent.id.in_(drop)))
        events = list(
            db.scalars(
                select(AuditEvent).where(AuditEvent.seq.isnot(None)).order_by(AuditEvent.seq)
            )
        )
        for seq, event in enumerate(events, start=1):
            event.seq = seq
            db.flush()  # one at a time: seq stays unique while it moves down
        _rebuild_checkpoints(db, registry, events, resign=resign)


def truncate_log(registry: Any, *, keep: int, resign: bool) -> None:
    """Remove every event after #``keep`` and every checkpoint that covered them."""
    with unit_of_work(registry.sessions) as db:
        db.execute(delete(AuditEvent).where(AuditEvent.seq > keep))
        events = list(
            db.scalars(
                select(AuditEvent).where(AuditEvent.seq.isnot(None)).order_by(AuditEvent.seq)
            )
        )
        _rebuild_checkpoints(db, registry, events, resign=resign)


def _rebuild_checkpoints(db: Any, registry: Any, events: list[AuditEvent], *, resign: bool) -> None:
    """One checkpoint over ``events``, in place of all the old ones."""
    old = db.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.size.desc())).first()
    db.execute(delete(AuditCheckpoint))
    db.flush()
    leaves = [merkle.leaf_hash(event_leaf(e)) for e in events]
    frontier: list[bytes] = []
    for index, leaf in enumerate(leaves):
        frontier = merkle.frontier_append(frontier, index, leaf)
    root = merkle.frontier_root(frontier)
    body = merkle.checkpoint_body(
        registry.settings.public_url, len(leaves), root, json.loads(old.body)["time"], old.key_id
    )
    signature = (
        load_signer(db, registry.settings, registry.now()).sign(body) if resign else old.signature
    )
    db.add(
        AuditCheckpoint(
            size=len(leaves),
            root=root.hex(),
            created_at=old.created_at,
            key_id=old.key_id,
            body=body.decode(),
            signature=signature,
            leaves="".join(leaf.hex() for leaf in leaves),
            frontier=[h.hex() for h in frontier],
            sealed_by="attacker",
        )
    )


def write_witness(path: Path, api: Any) -> Path:
    """A witness file holding the registry's latest checkpoint, as a client keeps it."""
    latest = api("GET", "/api/v1/audit/checkpoints/latest")
    assert latest.status_code == 200, latest.json
    keys = {k["key_id"]: k["public_key"] for k in api("GET", "/api/v1/keys").json["keys"]}
    path.write_text(json.dumps(merkle.witness_document("http://127.0.0.1", keys, [latest.json])))
    return path
