"""An account's password hash is bound by an audit event, as its role is: a hash written
straight into the table (a database administrator's own password on someone's account) lets
nobody in. Accounts that exist are marked for `certsvc init` to adopt, each with its event.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
LEGACY = -1  # certsvc.grants.LEGACY_GRANT


def upgrade() -> None:
    with op.batch_alter_table("staff_accounts") as table:
        table.add_column(sa.Column("password_idx", sa.BigInteger(), nullable=True))
    op.execute(f"UPDATE staff_accounts SET password_idx = {LEGACY}")  # noqa: S608 (a constant)


def downgrade() -> None:
    with op.batch_alter_table("staff_accounts") as table:
        table.drop_column("password_idx")
