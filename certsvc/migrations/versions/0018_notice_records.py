"""The notice's remaining records: the 公示's objection period, objections linked to it, and
delivery notices in the public register, storage media in the custody register.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "storage_media",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("description", sa.String(length=100), nullable=False),
        sa.Column("custodian_id", sa.Integer(), sa.ForeignKey("staff_accounts.id"), nullable=False),
        sa.Column("custody_idx", sa.BigInteger(), nullable=True),
        sa.Column("registered_by", sa.String(length=64), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("label"),
    )
    op.create_index("ix_storage_media_custodian_id", "storage_media", ["custodian_id"])
    op.create_table(
        "storage_media_handovers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("medium_id", sa.Integer(), sa.ForeignKey("storage_media.id"), nullable=False),
        sa.Column(
            "from_custodian_id", sa.Integer(), sa.ForeignKey("staff_accounts.id"), nullable=False
        ),
        sa.Column(
            "to_custodian_id", sa.Integer(), sa.ForeignKey("staff_accounts.id"), nullable=False
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("offered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_storage_media_handovers_medium_id", "storage_media_handovers", ["medium_id"]
    )
    op.create_table(
        "public_notices",
        sa.Column("number", sa.String(length=17), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("place", sa.String(length=100), nullable=True),
        sa.Column("available_from", sa.Date(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("number"),
    )
    with op.batch_alter_table("certify_announcements") as table:
        table.add_column(sa.Column("objections_until", sa.Date(), nullable=True))
    with op.batch_alter_table("certify_requests") as table:
        table.add_column(sa.Column("announcement_id", sa.Integer(), nullable=True))
        table.create_foreign_key(
            "fk_certify_requests_announcement_id",
            "certify_announcements",
            ["announcement_id"],
            ["id"],
        )
    op.create_index("ix_certify_requests_application_id", "certify_requests", ["application_id"])


def downgrade() -> None:
    op.drop_index("ix_certify_requests_application_id", "certify_requests")
    with op.batch_alter_table("certify_requests") as table:
        table.drop_constraint("fk_certify_requests_announcement_id", type_="foreignkey")
        table.drop_column("announcement_id")
    with op.batch_alter_table("certify_announcements") as table:
        table.drop_column("objections_until")
    op.drop_table("public_notices")
    op.drop_index("ix_storage_media_handovers_medium_id", "storage_media_handovers")
    op.drop_table("storage_media_handovers")
    op.drop_index("ix_storage_media_custodian_id", "storage_media")
    op.drop_table("storage_media")
