"""Sealing the audit log in tests, and what someone with write access to its database (and
perhaps the signing key) could do to it."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

import client.merkle as merkle
from registry.audit.sealer import seal_pending
from registry.audit.services import event_leaf
from registry.models import AuditCheckpoint, AuditEvent
from registry.publishing.signing import load_signer, public_raw
from registry.unit_of_work import unit_of_work


def seal(registry: Any) -> Any:
    """Seal everything pending now, as the background sealer would within a second."""
    deadline = time.monotonic() + 30
    report = seal_pending(registry, budget=60.0)
    while not report.leader and time.monotonic() < deadline:
        time.sleep(0.2)  # a server's background sealer holds the lock: it lets go within a tick
        report = seal_pending(registry, budget=60.0)
    assert report.leader, "another sealer held the lock for 30 s"
    return report


def sealed_events(registry: Any) -> list[AuditEvent]:
    """Every sealed event, in log order."""
    with unit_of_work(registry.sessions) as db:
        query = select(AuditEvent).where(AuditEvent.seq.isnot(None)).order_by(AuditEvent.seq)
        return list(db.scalars(query))


def rewrite_log(registry: Any, *, drop: list[int], resign: bool, key: Any = None) -> None:
    """Delete events, renumber every later one, and rebuild the checkpoints from there on.

    The checkpoints before the first deleted event are kept (they still verify). Without
    the key the rebuilt checkpoint keeps an old signature (nothing better is possible);
    with it (``resign``) it is signed afresh, as a registry operator could; with ``key`` (an
    Ed25519 private key) it is signed by that key, as a database administrator could."""
    with unit_of_work(registry.sessions) as db:
        first = min(db.scalars(select(AuditEvent.seq).where(AuditEvent.id.in_(drop))))
        db.execute(delete(AuditEvent).where(AuditEvent.id.in_(drop)))
        events = _sealed(db)
        for seq, event in enumerate(events, start=1):
            if event.seq != seq:
                event.seq = seq
                db.flush()  # one at a time: seq stays unique while it moves down
        _rebuild_after(db, registry, events, first, resign=resign, key=key)


def truncate_log(registry: Any, *, keep: int) -> None:
    """Remove every event after #``keep`` and every checkpoint that covered them
    (``keep`` must be a checkpoint's size, so the rest still verifies)."""
    with unit_of_work(registry.sessions) as db:
        assert db.scalar(select(AuditCheckpoint).where(AuditCheckpoint.size == keep))
        db.execute(delete(AuditEvent).where(AuditEvent.seq > keep))
        db.execute(delete(AuditCheckpoint).where(AuditCheckpoint.size > keep))


def _sealed(db: Any) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.seq.isnot(None)).order_by(AuditEvent.seq)
    return list(db.scalars(query))


def _rebuild_after(
    db: Any, registry: Any, events: list[AuditEvent], first: int, *, resign: bool, key: Any
) -> None:
    """One checkpoint over every event, replacing those that covered #``first`` or later."""
    kept = db.scalars(
        select(AuditCheckpoint)
        .where(AuditCheckpoint.size < first)
        .order_by(AuditCheckpoint.size.desc())
    ).first()
    old = db.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.size.desc())).first()
    db.execute(delete(AuditCheckpoint).where(AuditCheckpoint.size >= first))
    db.flush()
    start = kept.size if kept is not None else 0
    frontier = [bytes.fromhex(h) for h in kept.frontier] if kept is not None else []
    leaves = [merkle.leaf_hash(event_leaf(e)) for e in events[start:]]
    for offset, leaf in enumerate(leaves):
        frontier = merkle.frontier_append(frontier, start + offset, leaf)
    root, size = merkle.frontier_root(frontier), len(events)
    key_id = old.key_id
    if key is not None:
        key_id = hashlib.sha256(public_raw(key)).hexdigest()
    body = merkle.checkpoint_body(
        registry.settings.public_url, size, root, json.loads(old.body)["time"], key_id
    )
    if key is not None:
        signature = base64.b64encode(key.sign(body)).decode()
    elif resign:
        signature = load_signer(db, registry.settings, registry.now()).sign(body)
    else:
        signature = old.signature
    db.add(
        AuditCheckpoint(
            size=size,
            root=root.hex(),
            created_at=old.created_at,
            key_id=key_id,
            body=body.decode(),
            signature=signature,
            leaves="".join(leaf.hex() for leaf in leaves),
            frontier=[h.hex() for h in frontier],
            sealed_by="someone with database access",
        )
    )


def write_witness(path: Path, api: Any) -> Path:
    """A witness file holding the registry's latest checkpoint, as a client keeps it."""
    latest = api("GET", "/api/v1/audit/checkpoints/latest")
    assert latest.status_code == 200, latest.json
    keys = {k["key_id"]: k["public_key"] for k in api("GET", "/api/v1/keys").json["keys"]}
    path.write_text(json.dumps(merkle.witness_document("http://127.0.0.1", keys, [latest.json])))
    return path


def run_cli(settings: Any, *args: str) -> Any:
    """``registry-server ARGS`` against the test's database and instance folder."""
    from click.testing import CliRunner

    from registry.cli import main

    env = {
        "REGISTRY_DATABASE_URL": settings.database_url,
        "REGISTRY_INSTANCE_PATH": str(settings.instance_path),
        "REGISTRY_SECRET_KEY": settings.secret_key,
        "REGISTRY_PUBLIC_URL": settings.public_url,
    }
    return CliRunner().invoke(main, list(args), env=env)
