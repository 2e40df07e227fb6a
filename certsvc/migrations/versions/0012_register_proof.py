"""Register rows carry their proof: signed, versioned revocation lists; one live certificate
per application.

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "status IN ('pending', 'issued')"


def upgrade() -> None:
    op.create_table(
        "public_revocation_lists",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_public_revocation_lists")),
    )
    op.create_index(
        "uq_certify_certificates_live_application",
        "certify_certificates",
        ["application_id"],
        unique=True,
        sqlite_where=sa.text(LIVE),
        postgresql_where=sa.text(LIVE),
    )


def downgrade() -> None:
    op.drop_index("uq_certify_certificates_live_application", "certify_certificates")
    op.drop_table("public_revocation_lists")
