"""Case rules from the notice in full: eligibility rule tables (versioned), the value each
check found, the rule table a batch is held to; the criminal-record check's police reference
and the second officer's approval of a replaced result; slots' places, attendance at on-site
confirmation, an officer's extension of registration; deadline overrides' category, expiry and
second officer; the implementation plan filed and staff training;
the return of a recalled certificate; the register of applicants' requests.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "certify_rule_tables",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("document", sa.String(length=200), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("loaded_by", sa.String(length=64), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_certify_rule_tables")),
    )
    with op.batch_alter_table("certify_batches", schema=None) as batch_op:
        # Batches made before rule tables were held to the national minimums (version 0).
        batch_op.add_column(
            sa.Column("rule_version", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("registration_extended_until", sa.Date(), nullable=True))
        batch_op.add_column(
            sa.Column("registration_extended_by", sa.String(length=64), nullable=True)
        )
        batch_op.add_column(
            sa.Column("registration_extension_reason", sa.String(length=500), nullable=True)
        )
        batch_op.add_column(sa.Column("plan_filed_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("plan_reference", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("plan_recorded_by", sa.String(length=64), nullable=True))
    op.create_table(
        "certify_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("summary", sa.String(length=500), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("answered_on", sa.Date(), nullable=True),
        sa.Column("answer", sa.String(length=500), nullable=True),
        sa.Column("answered_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["certify_applications.id"],
            name=op.f("fk_certify_requests_application_id_certify_applications"),
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["certify_batches.id"],
            name=op.f("fk_certify_requests_batch_id_certify_batches"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certify_requests")),
    )
    with op.batch_alter_table("certify_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_certify_requests_batch_id"), ["batch_id"], unique=False
        )
    op.create_table(
        "certify_trainings",
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("trained_on", sa.Date(), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["certify_batches.id"],
            name=op.f("fk_certify_trainings_batch_id_certify_batches"),
        ),
        sa.PrimaryKeyConstraint("batch_id", "username", name=op.f("pk_certify_trainings")),
    )
    op.create_table(
        "certify_attendances",
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("confirmed_by", sa.String(length=64), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("place", sa.String(length=100), nullable=False),
        sa.Column("national_reference", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["certify_applications.id"],
            name=op.f("fk_certify_attendances_application_id_certify_applications"),
        ),
        sa.PrimaryKeyConstraint("application_id", name=op.f("pk_certify_attendances")),
    )
    with op.batch_alter_table("certify_applications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("override_category", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("override_expires_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("override_approved_by", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("override_approved_at", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("certify_revocations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("returned_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("return_recorded_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("return_note", sa.String(length=200), nullable=True))
    with op.batch_alter_table("certify_slots", schema=None) as batch_op:
        # Slots made before places were recorded: the place is unknown, shown empty.
        batch_op.add_column(
            sa.Column("place", sa.String(length=100), nullable=False, server_default="")
        )
    with op.batch_alter_table("certify_checks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("value", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("police_unit", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("police_issued_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("replaces_result", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("approved_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("certify_checks", schema=None) as batch_op:
        for column in (
            "approved_at",
            "approved_by",
            "replaces_result",
            "police_issued_on",
            "police_unit",
            "value",
        ):
            batch_op.drop_column(column)
    with op.batch_alter_table("certify_batches", schema=None) as batch_op:
        for column in (
            "plan_recorded_by",
            "plan_reference",
            "plan_filed_on",
            "registration_extension_reason",
            "registration_extended_by",
            "registration_extended_until",
            "rule_version",
        ):
            batch_op.drop_column(column)
    with op.batch_alter_table("certify_slots", schema=None) as batch_op:
        batch_op.drop_column("place")
    with op.batch_alter_table("certify_applications", schema=None) as batch_op:
        for column in (
            "override_approved_at",
            "override_approved_by",
            "override_expires_on",
            "override_category",
        ):
            batch_op.drop_column(column)
    with op.batch_alter_table("certify_revocations", schema=None) as batch_op:
        for column in ("return_note", "return_recorded_by", "returned_on"):
            batch_op.drop_column(column)
    op.drop_table("certify_attendances")
    op.drop_table("certify_trainings")
    op.drop_table("certify_requests")
    op.drop_table("certify_rule_tables")
