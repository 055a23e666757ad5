"""audit log sealed into signed checkpoints (issue 14)

Events are appended without a lock and sealed later: ``seq`` becomes NULL until sealed, the
per-event hash chain goes (``prev_hash``, ``hash``), and ``audit_checkpoints`` holds the signed
Merkle tree heads. Events recorded before this migration become pending and the first seal
orders them as they were (by id, which followed the old chain's order): run the old
``registry-server audit verify`` before upgrading if that history must be vouched for.

Revision ID: 14c0a7d1e5f2
Revises: a21a8ba8aa2e
Create Date: 2026-12-20 00:00:00
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import registry.db

revision: str = "14c0a7d1e5f2"
down_revision: str | None = "a21a8ba8aa2e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("root", sa.String(length=64), nullable=False),
        sa.Column("created_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(length=100), nullable=False),
        sa.Column("leaves", sa.Text(), nullable=False),
        sa.Column("frontier", sa.JSON(), nullable=False),
        sa.Column("sealed_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
        sa.UniqueConstraint("size", name=op.f("uq_audit_checkpoints_size")),
    )
    with op.batch_alter_table("audit_events") as batch_op:
        batch_op.alter_column("seq", existing_type=sa.Integer(), nullable=True)
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("hash")
    op.execute("UPDATE audit_events SET seq = NULL")


def downgrade() -> None:
    """Back to the hash chain: every event (sealed first, then pending) is chained again."""
    with op.batch_alter_table("audit_events") as batch_op:
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    events = sa.table(
        "audit_events",
        *(
            sa.column(name)
            for name in (
                "id", "seq", "tag", "actor_id", "actor", "target", "model_id", "version_id",
                "ip", "user_agent", "prev_hash", "hash",
            )
        ),
        sa.column("created_at", registry.db.UTCDateTime(timezone=True)),
        sa.column("details", sa.JSON()),
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(events).order_by(events.c.seq.is_(None), events.c.seq, events.c.id)
    ).all()
    conn.execute(sa.update(events).values(seq=None))
    prev = GENESIS
    for seq, row in enumerate(rows, start=1):
        digest = _old_event_hash(row, seq, prev)
        conn.execute(
            sa.update(events)
            .where(events.c.id == row.id)
            .values(seq=seq, prev_hash=prev, hash=digest)
        )
        prev = digest
    conn.execute(sa.text("UPDATE audit_head SET seq = :seq, hash = :hash WHERE id = 1"),
                 {"seq": len(rows), "hash": prev})
    with op.batch_alter_table("audit_events") as batch_op:
        batch_op.alter_column("seq", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
    op.drop_table("audit_checkpoints")


def _old_event_hash(row: sa.Row, seq: int, prev: str) -> str:
    """The hash the chain before this migration gave an event (its own copy, frozen here)."""
    body = {
        "seq": seq,
        "created_at": row.created_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "tag": row.tag,
        "actor_id": row.actor_id,
        "actor": row.actor,
        "target": row.target,
        "model_id": row.model_id,
        "version_id": row.version_id,
        "ip": row.ip,
        "user_agent": row.user_agent,
        "details": row.details,
        "prev_hash": prev,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()
