"""race-free grants and reviews: one pending access request per user and model, one open
credential application per user, one in-review version per tag; tokens know their parent

Rows that races already duplicated are closed first, keeping the oldest of each group:
extra pending access requests become ``rejected``, extra pending applications
``rejected`` and extra accepted ones ``revoked`` (the oldest accepted one stays), extra
in-review versions of one tag ``rejected``; each with a reason saying so.

Revision ID: 13b0d1e5a7c3
Revises: 12c0ffee1d01
Create Date: 2026-12-01 13:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "13b0d1e5a7c3"
down_revision: str | None = "12c0ffee1d01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DUPLICATE = "closed by migration 13: a duplicate created by a race"
RESERVED_TAG = sa.text("state = 'in-review' AND requested_tag IS NOT NULL")
PENDING_REQUEST = sa.text("status = 'pending'")
OPEN_APPLICATION = sa.text("status IN ('pending', 'accepted')")


def _close_duplicates(table: str, column: str, new: str, where: str, group: str) -> None:
    op.execute(
        sa.text(
            f"UPDATE {table} SET {column} = :new, {_reason(table)} = :reason "
            f"WHERE {where} AND id NOT IN (SELECT MIN(id) FROM {table} WHERE {where} "
            f"GROUP BY {group})"
        ).bindparams(new=new, reason=DUPLICATE)
    )


def _reason(table: str) -> str:
    return "reject_reason" if table == "versions" else "reason"


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch.create_index("ix_api_tokens_parent_id", ["parent_id"])
        batch.create_foreign_key("fk_api_tokens_parent_id", "api_tokens", ["parent_id"], ["id"])
    _close_duplicates(
        "access_requests", "status", "rejected", "status = 'pending'", "user_id, model_id"
    )
    _close_duplicates(
        "credential_applications", "status", "revoked", "status = 'accepted'", "user_id"
    )
    op.execute(
        sa.text(
            "UPDATE credential_applications SET status = 'rejected', reason = :reason "
            "WHERE status = 'pending' AND user_id IN "
            "(SELECT user_id FROM credential_applications WHERE status = 'accepted')"
        ).bindparams(reason=DUPLICATE)
    )
    _close_duplicates(
        "credential_applications", "status", "rejected", "status = 'pending'", "user_id"
    )
    _close_duplicates(
        "versions",
        "state",
        "rejected",
        "state = 'in-review' AND requested_tag IS NOT NULL",
        "model_id, requested_tag",
    )
    op.create_index(
        "uq_versions_reserved_tag",
        "versions",
        ["model_id", "requested_tag"],
        unique=True,
        postgresql_where=RESERVED_TAG,
        sqlite_where=RESERVED_TAG,
    )
    op.create_index(
        "uq_access_requests_pending",
        "access_requests",
        ["user_id", "model_id"],
        unique=True,
        postgresql_where=PENDING_REQUEST,
        sqlite_where=PENDING_REQUEST,
    )
    op.create_index(
        "uq_credential_applications_open",
        "credential_applications",
        ["user_id"],
        unique=True,
        postgresql_where=OPEN_APPLICATION,
        sqlite_where=OPEN_APPLICATION,
    )


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_constraint("fk_api_tokens_parent_id", type_="foreignkey")
        batch.drop_index("ix_api_tokens_parent_id")
        batch.drop_column("parent_id")
    op.drop_index("uq_credential_applications_open", table_name="credential_applications")
    op.drop_index("uq_access_requests_pending", table_name="access_requests")
    op.drop_index("uq_versions_reserved_tag", table_name="versions")
