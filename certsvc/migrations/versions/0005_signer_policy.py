"""Signer policy: key retirement and certificate revocation, workstations per token, custody
handovers, revocation approvals (dual control), signed documents.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("signing_keys") as batch:
        batch.add_column(sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("certificate_revoked_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("revocation_reason", sa.String(length=200), nullable=True))
    op.create_table(
        "hsm_token_workstations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_serial", sa.String(length=32), nullable=False),
        sa.Column("workstation_name", sa.String(length=64), nullable=False),
        sa.Column("registered_by", sa.String(length=64), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["token_serial"],
            ["hsm_tokens.serial"],
            name=op.f("fk_hsm_token_workstations_token_serial_hsm_tokens"),
        ),
        sa.ForeignKeyConstraint(
            ["workstation_name"],
            ["workstations.name"],
            name=op.f("fk_hsm_token_workstations_workstation_name_workstations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hsm_token_workstations")),
        sa.UniqueConstraint(
            "token_serial",
            "workstation_name",
            name=op.f("uq_hsm_token_workstations_token_serial"),
        ),
    )
    op.create_table(
        "hsm_token_handovers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_serial", sa.String(length=32), nullable=False),
        sa.Column("from_custodian_id", sa.Integer(), nullable=False),
        sa.Column("to_custodian_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("offered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("offered_from", sa.String(length=64), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_from", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["from_custodian_id"],
            ["staff_accounts.id"],
            name=op.f("fk_hsm_token_handovers_from_custodian_id_staff_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["to_custodian_id"],
            ["staff_accounts.id"],
            name=op.f("fk_hsm_token_handovers_to_custodian_id_staff_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["token_serial"],
            ["hsm_tokens.serial"],
            name=op.f("fk_hsm_token_handovers_token_serial_hsm_tokens"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hsm_token_handovers")),
    )
    op.create_index(
        op.f("ix_hsm_token_handovers_token_serial"),
        "hsm_token_handovers",
        ["token_serial"],
        unique=False,
    )
    op.create_table(
        "signing_approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.String(length=128), nullable=False),
        sa.Column("officer", sa.String(length=64), nullable=False),
        sa.Column("officer_role", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signing_approvals")),
        sa.UniqueConstraint(
            "document_id", "officer", name=op.f("uq_signing_approvals_document_id")
        ),
    )
    op.create_index(
        op.f("ix_signing_approvals_document_id"),
        "signing_approvals",
        ["document_id"],
        unique=False,
    )
    op.create_table(
        "signed_documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("document_id", sa.String(length=128), nullable=False),
        sa.Column("payload_sha256", sa.String(length=64), nullable=False),
        sa.Column("cose", sa.LargeBinary(), nullable=False),
        sa.Column("signing_key_id", sa.Integer(), nullable=False),
        sa.Column("kid", sa.LargeBinary(length=8), nullable=False),
        sa.Column("audit_index", sa.BigInteger(), nullable=False),
        sa.Column("signed_by", sa.String(length=64), nullable=False),
        sa.Column("workstation", sa.String(length=64), nullable=False),
        sa.Column("batch", sa.String(length=64), nullable=True),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["signing_key_id"],
            ["signing_keys.id"],
            name=op.f("fk_signed_documents_signing_key_id_signing_keys"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signed_documents")),
        sa.UniqueConstraint("kind", "document_id", name=op.f("uq_signed_documents_kind")),
    )
    op.create_index(op.f("ix_signed_documents_batch"), "signed_documents", ["batch"])
    op.create_index(
        op.f("ix_signed_documents_signing_key_id"), "signed_documents", ["signing_key_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_signed_documents_signing_key_id"), table_name="signed_documents")
    op.drop_index(op.f("ix_signed_documents_batch"), table_name="signed_documents")
    op.drop_table("signed_documents")
    op.drop_index(op.f("ix_signing_approvals_document_id"), table_name="signing_approvals")
    op.drop_table("signing_approvals")
    op.drop_index(op.f("ix_hsm_token_handovers_token_serial"), table_name="hsm_token_handovers")
    op.drop_table("hsm_token_handovers")
    op.drop_table("hsm_token_workstations")
    with op.batch_alter_table("signing_keys") as batch:
        batch.drop_column("revocation_reason")
        batch.drop_column("certificate_revoked_at")
        batch.drop_column("retired_at")
