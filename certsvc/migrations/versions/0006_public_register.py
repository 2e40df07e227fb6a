"""Public register: certificates' public fields, trusted bodies and keys, signed trust lists.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "public_certificates",
        sa.Column("verification_id", sa.String(32), nullable=False),
        sa.Column("number", sa.String(17), nullable=False),
        sa.Column("qualification", sa.String(4), nullable=False),
        sa.Column("subject", sa.String(4), nullable=False),
        sa.Column("body_code", sa.String(6), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("masked_name", sa.String(32), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("revoked_on", sa.Date(), nullable=True),
        sa.Column("revocation_category", sa.String(16), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("verification_id", name=op.f("pk_public_certificates")),
        sa.UniqueConstraint("number", name=op.f("uq_public_certificates_number")),
    )
    op.create_table(
        "public_bodies",
        sa.Column("code", sa.String(6), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("root_certificate", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_public_bodies")),
    )
    op.create_table(
        "public_keys",
        sa.Column("kid", sa.String(16), nullable=False),
        sa.Column("body_code", sa.String(6), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("certificate", sa.LargeBinary(), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_public_keys")),
    )
    op.create_table(
        "public_trust_lists",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_public_trust_lists")),
    )


def downgrade() -> None:
    op.drop_table("public_trust_lists")
    op.drop_table("public_keys")
    op.drop_table("public_bodies")
    op.drop_table("public_certificates")
