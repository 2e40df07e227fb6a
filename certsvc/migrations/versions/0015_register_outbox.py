"""The register's outbox: each change to a public table queued in the same transaction, for the
relay to push into the public database (`verify.outbox`, `certsvc.relay`).

A register written before this revision is queued by `certsvc register requeue`.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "register_outbox",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("relayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_register_outbox")),
    )
    op.create_index(
        op.f("ix_register_outbox_relayed_at"), "register_outbox", ["relayed_at"], unique=False
    )
    head = op.create_table(
        "register_outbox_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_register_outbox_head")),
    )
    op.bulk_insert(head, [{"id": 1, "last_id": 0}])


def downgrade() -> None:
    op.drop_table("register_outbox_head")
    op.drop_index(op.f("ix_register_outbox_relayed_at"), table_name="register_outbox")
    op.drop_table("register_outbox")
