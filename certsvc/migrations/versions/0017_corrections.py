"""Corrections of conclusions (R10): a decision may supersede an earlier one of its case (one
first decision per case, each superseded at most once), with the correction's reason and its
second officer; a certificate names the approval it was issued on and the revoked certificate
a corrected reissue replaces; the natural persons behind override and check records, for
dual control by persons.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIRST = "supersedes_id IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("certify_decisions", schema=None) as batch_op:
        batch_op.drop_constraint("uq_certify_decisions_application_id", type_="unique")
        batch_op.add_column(sa.Column("decided_by_person", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("supersedes_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("correction_reason", sa.String(length=500), nullable=True))
        batch_op.add_column(
            sa.Column("correction_approved_by", sa.String(length=64), nullable=True)
        )
        batch_op.add_column(
            sa.Column("correction_approved_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_certify_decisions_supersedes_id_certify_decisions"),
            "certify_decisions",
            ["supersedes_id"],
            ["id"],
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_certify_decisions_supersedes_id"), ["supersedes_id"]
        )
        batch_op.create_index(
            batch_op.f("ix_certify_decisions_application_id"), ["application_id"], unique=False
        )
    op.create_index(
        "uq_certify_decisions_first",
        "certify_decisions",
        ["application_id"],
        unique=True,
        sqlite_where=sa.text(FIRST),
        postgresql_where=sa.text(FIRST),
    )
    with op.batch_alter_table("certify_certificates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("decision_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("replaces", sa.String(length=17), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_certify_certificates_decision_id_certify_decisions"),
            "certify_decisions",
            ["decision_id"],
            ["id"],
        )
    # Before corrections a case had one decision: the one its certificates were issued on.
    op.execute(
        "UPDATE certify_certificates SET decision_id = (SELECT d.id FROM certify_decisions d "
        "WHERE d.application_id = certify_certificates.application_id)"
    )
    with op.batch_alter_table("certify_applications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("override_person", sa.String(length=64), nullable=True))
    with op.batch_alter_table("certify_checks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recorded_person", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("certify_checks", schema=None) as batch_op:
        batch_op.drop_column("recorded_person")
    with op.batch_alter_table("certify_applications", schema=None) as batch_op:
        batch_op.drop_column("override_person")
    with op.batch_alter_table("certify_certificates", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_certify_certificates_decision_id_certify_decisions"),
            type_="foreignkey",
        )
        batch_op.drop_column("replaces")
        batch_op.drop_column("decision_id")
    op.drop_index("uq_certify_decisions_first", "certify_decisions")
    with op.batch_alter_table("certify_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_certify_decisions_application_id"))
        batch_op.drop_constraint(batch_op.f("uq_certify_decisions_supersedes_id"), type_="unique")
        batch_op.drop_constraint(
            batch_op.f("fk_certify_decisions_supersedes_id_certify_decisions"),
            type_="foreignkey",
        )
        for column in (
            "superseded_at",
            "correction_approved_at",
            "correction_approved_by",
            "correction_reason",
            "supersedes_id",
            "decided_by_person",
        ):
            batch_op.drop_column(column)
        batch_op.create_unique_constraint("uq_certify_decisions_application_id", ["application_id"])
