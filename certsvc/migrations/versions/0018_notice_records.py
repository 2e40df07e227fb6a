"""The notice's remaining records: the 公示's objection period, objections linked to it, and
delivery notices in the public register.

Revision ID: 0018
Revises: 0016
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
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


def downgrade() -> None:
    with op.batch_alter_table("certify_requests") as table:
        table.drop_constraint("fk_certify_requests_announcement_id", type_="foreignkey")
        table.drop_column("announcement_id")
    with op.batch_alter_table("certify_announcements") as table:
        table.drop_column("objections_until")
    op.drop_table("public_notices")
