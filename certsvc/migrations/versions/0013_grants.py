"""Grants as audit events: each privilege row (account, API token, workstation, a token's
custody) names the event granting it; accounts name the
natural person holding them and whether their password is still the proposer's; reveals,
lookups and revocation approvals count persons.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
LEGACY = -1  # certsvc.grants.LEGACY_GRANT


def upgrade() -> None:
    with op.batch_alter_table("staff_accounts") as table:
        table.add_column(sa.Column("person", sa.String(length=64), nullable=True))
        table.add_column(sa.Column("grant_idx", sa.BigInteger(), nullable=True))
        table.add_column(sa.Column("proposed_by", sa.String(length=64), nullable=True))
        table.add_column(
            sa.Column("must_set_password", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute("UPDATE staff_accounts SET person = username")
    with op.batch_alter_table("staff_accounts") as table:
        table.alter_column("person", existing_type=sa.String(length=64), nullable=False)
        table.create_index("ix_staff_accounts_person", ["person"])
    for name in ("api_tokens", "workstations"):
        with op.batch_alter_table(name) as table:
            table.add_column(sa.Column("grant_idx", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("hsm_tokens") as table:
        table.add_column(sa.Column("custody_idx", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("vault_reveals") as table:
        table.add_column(sa.Column("person", sa.String(length=64), nullable=True))
    op.execute("UPDATE vault_reveals SET person = actor")
    with op.batch_alter_table("vault_reveals") as table:
        table.alter_column("person", existing_type=sa.String(length=64), nullable=False)
        table.create_index("ix_vault_reveals_person_at", ["person", "revealed_at"])
    with op.batch_alter_table("signing_approvals") as table:
        table.add_column(sa.Column("person", sa.String(length=64), nullable=True))
    op.create_table(
        "vault_lookups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=32), nullable=False),
        sa.Column("values", sa.Integer(), nullable=False),
        sa.Column("misses", sa.Integer(), nullable=False),
        sa.Column("looked_up_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vault_lookups")),
    )
    op.create_index("ix_vault_lookups_person_at", "vault_lookups", ["person", "looked_up_at"])
    # Rows granted before grants were events: `certsvc init` adopts them, each with its event
    # (`certsvc.grants.adopt_legacy_grants`).
    for name in ("staff_accounts", "api_tokens", "workstations"):
        op.execute(f"UPDATE {name} SET grant_idx = {LEGACY}")  # noqa: S608
    op.execute(f"UPDATE hsm_tokens SET custody_idx = {LEGACY} WHERE custodian_id IS NOT NULL")  # noqa: S608


def downgrade() -> None:
    op.drop_index("ix_vault_lookups_person_at", table_name="vault_lookups")
    op.drop_table("vault_lookups")
    with op.batch_alter_table("signing_approvals") as table:
        table.drop_column("person")
    with op.batch_alter_table("vault_reveals") as table:
        table.drop_index("ix_vault_reveals_person_at")
        table.drop_column("person")
    with op.batch_alter_table("hsm_tokens") as table:
        table.drop_column("custody_idx")
    for name in ("workstations", "api_tokens"):
        with op.batch_alter_table(name) as table:
            table.drop_column("grant_idx")
    with op.batch_alter_table("staff_accounts") as table:
        table.drop_index("ix_staff_accounts_person")
        for column in ("must_set_password", "proposed_by", "grant_idx", "person"):
            table.drop_column(column)
