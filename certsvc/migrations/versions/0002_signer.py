"""Signer custody register: tokens, their custodians, the keys on them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hsm_tokens",
        sa.Column("serial", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("manufacturer", sa.String(length=64), nullable=False),
        sa.Column("custodian_id", sa.Integer(), nullable=True),
        sa.Column("pin_failures", sa.Integer(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["custodian_id"],
            ["staff_accounts.id"],
            name=op.f("fk_hsm_tokens_custodian_id_staff_accounts"),
        ),
        sa.PrimaryKeyConstraint("serial", name=op.f("pk_hsm_tokens")),
        sa.UniqueConstraint("label", name=op.f("uq_hsm_tokens_label")),
    )
    op.create_table(
        "signing_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_serial", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column(
            "purpose",
            sa.Enum(
                "root",
                "certificate",
                "decision",
                "revocation",
                "audit-checkpoint",
                name="key_purpose",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("algorithm", sa.String(length=16), nullable=False),
        sa.Column("body_code", sa.String(length=16), nullable=False),
        sa.Column("certificate_der", sa.LargeBinary(), nullable=False),
        sa.Column("issuer_key_id", sa.Integer(), nullable=True),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("usage_count", sa.Integer(), nullable=False),
        sa.Column("usage_limit", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "retired",
                name="key_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["issuer_key_id"],
            ["signing_keys.id"],
            name=op.f("fk_signing_keys_issuer_key_id_signing_keys"),
        ),
        sa.ForeignKeyConstraint(
            ["token_serial"],
            ["hsm_tokens.serial"],
            name=op.f("fk_signing_keys_token_serial_hsm_tokens"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signing_keys")),
        sa.UniqueConstraint("token_serial", "label", name=op.f("uq_signing_keys_token_serial")),
    )


def downgrade() -> None:
    op.drop_table("signing_keys")
    op.drop_table("hsm_tokens")
