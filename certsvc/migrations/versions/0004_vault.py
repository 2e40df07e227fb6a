"""Vault: tokens, ciphertexts, blind indexes, wrapped data keys; applicants by token and their
bulk-import bookkeeping.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vault_key_versions",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kek_label", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_vault_key_versions")),
    )
    op.create_table(
        "vault_keys",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version"],
            ["vault_key_versions.version"],
            name=op.f("fk_vault_keys_version_vault_key_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("version", "purpose", name=op.f("pk_vault_keys")),
    )
    op.create_table(
        "vault_entries",
        sa.Column("token", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("blind_index", sa.LargeBinary(length=32), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_version"],
            ["vault_key_versions.version"],
            name=op.f("fk_vault_entries_key_version_vault_key_versions"),
        ),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_vault_entries")),
        sa.UniqueConstraint("kind", "blind_index", name=op.f("uq_vault_entries_kind")),
    )
    op.create_table(
        "vault_reveals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=32), nullable=False),
        sa.Column("token", sa.String(length=40), nullable=False),
        sa.Column("revealed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vault_reveals")),
    )
    with op.batch_alter_table("vault_reveals", schema=None) as batch_op:
        batch_op.create_index("ix_vault_reveals_actor_at", ["actor", "revealed_at"], unique=False)

    op.create_table(
        "applicant_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("encoding", sa.String(length=16), nullable=False),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        sa.Column("imported", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("invalid", sa.Integer(), nullable=False),
        sa.Column("started_by", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applicant_imports")),
        sa.UniqueConstraint("file_sha256", name=op.f("uq_applicant_imports_file_sha256")),
    )
    op.create_table(
        "applicant_import_errors",
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.Column("row", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("field", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["applicant_imports.id"],
            name=op.f("fk_applicant_import_errors_import_id_applicant_imports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "import_id", "row", "field", name=op.f("pk_applicant_import_errors")
        ),
    )
    op.create_table(
        "applicants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("id_number_token", sa.String(length=40), nullable=False),
        sa.Column("name_token", sa.String(length=40), nullable=False),
        sa.Column("phone_token", sa.String(length=40), nullable=True),
        sa.Column("email_token", sa.String(length=40), nullable=True),
        sa.Column("address_token", sa.String(length=40), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("sex", sa.String(length=1), nullable=False),
        sa.Column("region_code", sa.String(length=6), nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["applicant_imports.id"],
            name=op.f("fk_applicants_import_id_applicant_imports"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applicants")),
        sa.UniqueConstraint("id_number_token", name=op.f("uq_applicants_id_number_token")),
    )


def downgrade() -> None:
    op.drop_table("applicants")
    op.drop_table("applicant_import_errors")
    op.drop_table("applicant_imports")
    with op.batch_alter_table("vault_reveals", schema=None) as batch_op:
        batch_op.drop_index("ix_vault_reveals_actor_at")
    op.drop_table("vault_reveals")
    op.drop_table("vault_entries")
    op.drop_table("vault_keys")
    op.drop_table("vault_key_versions")
