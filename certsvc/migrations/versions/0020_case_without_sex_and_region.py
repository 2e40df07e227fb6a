"""The case no longer keeps the applicant's sex and region code: no rule reads them, and with the
birth date they narrow an ID number to a few hundred candidates. The vault keeps the number.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("applicants") as batch_op:
        batch_op.drop_column("sex")
        batch_op.drop_column("region_code")


def downgrade() -> None:
    # The values are gone from the case; only a reveal of each ID number could restore them.
    with op.batch_alter_table("applicants") as batch_op:
        batch_op.add_column(sa.Column("sex", sa.String(length=1), nullable=True))
        batch_op.add_column(sa.Column("region_code", sa.String(length=6), nullable=True))
