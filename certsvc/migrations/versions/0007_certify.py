"""Certify: batches, confirmation slots, applications, checks, decisions, certificates and
their sequence counters, deliveries, revocations, announcements.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "certify_batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("body_code", sa.String(length=6), nullable=False),
        sa.Column("registration_opens", sa.Date(), nullable=False),
        sa.Column("registration_closes", sa.Date(), nullable=False),
        sa.Column("confirmation_starts", sa.Date(), nullable=False),
        sa.Column("confirmation_ends", sa.Date(), nullable=False),
        sa.Column("decision_deadline", sa.Date(), nullable=False),
        sa.Column("closes_on", sa.Date(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certify_batches")),
        sa.UniqueConstraint("name", name=op.f("uq_certify_batches_name")),
    )
    op.create_table(
        "certify_certificate_sequences",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("body_code", sa.String(length=6), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("year", "body_code", name=op.f("pk_certify_certificate_sequences")),
    )
    op.create_table(
        "certify_announcements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("published_by", sa.String(length=64), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["certify_batches.id"],
            name=op.f("fk_certify_announcements_batch_id_certify_batches"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certify_announcements")),
    )
    op.create_table(
        "certify_slots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("booked", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["certify_batches.id"],
            name=op.f("fk_certify_slots_batch_id_certify_batches"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certify_slots")),
        sa.UniqueConstraint("batch_id", "starts_at", name=op.f("uq_certify_slots_batch_id")),
    )
    op.create_table(
        "certify_applications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("applicant_id", sa.Integer(), nullable=False),
        sa.Column("qualification", sa.String(length=2), nullable=False),
        sa.Column("subject", sa.String(length=2), nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=True),
        sa.Column("queue_number", sa.Integer(), nullable=True),
        sa.Column("override_by", sa.String(length=64), nullable=True),
        sa.Column("override_reason", sa.String(length=500), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["applicant_id"],
            ["applicants.id"],
            name=op.f("fk_certify_applications_applicant_id_applicants"),
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["certify_batches.id"],
            name=op.f("fk_certify_applications_batch_id_certify_batches"),
        ),
        sa.ForeignKeyConstraint(
            ["slot_id"],
            ["certify_slots.id"],
            name=op.f("fk_certify_applications_slot_id_certify_slots"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certify_applications")),
        sa.UniqueConstraint(
            "batch_id",
            "applicant_id",
            "qualification",
            name=op.f("uq_certify_applications_batch_id"),
        ),
    )
    with op.batch_alter_table("certify_applications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_certify_applications_batch_id"), ["batch_id"], unique=False
        )

    op.create_table(
        "certify_certificates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=17), nullable=False),
        sa.Column("verification_id", sa.String(length=32), nullable=False),
        sa.Column("masked_name", sa.String(length=32), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("issued_at", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("qr_text", sa.String(length=2000), nullable=True),
        sa.Column("issued_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["certify_applications.id"],
            name=op.f("fk_certify_certificates_application_id_certify_applications"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certify_certificates")),
        sa.UniqueConstraint("number", name=op.f("uq_certify_certificates_number")),
        sa.UniqueConstraint(
            "verification_id", name=op.f("uq_certify_certificates_verification_id")
        ),
    )
    with op.batch_alter_table("certify_certificates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_certify_certificates_application_id"), ["application_id"], unique=False
        )

    op.create_table(
        "certify_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("source_system", sa.String(length=64), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["certify_applications.id"],
            name=op.f("fk_certify_checks_application_id_certify_applications"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certify_checks")),
        sa.UniqueConstraint(
            "application_id", "kind", "attempt", name=op.f("uq_certify_checks_application_id")
        ),
    )
    with op.batch_alter_table("certify_checks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_certify_checks_application_id"), ["application_id"], unique=False
        )

    op.create_table(
        "certify_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("reasons", sa.String(length=500), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["certify_applications.id"],
            name=op.f("fk_certify_decisions_application_id_certify_applications"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certify_decisions")),
        sa.UniqueConstraint("application_id", name=op.f("uq_certify_decisions_application_id")),
    )
    op.create_table(
        "certify_deliveries",
        sa.Column("certificate_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("pickup_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pickup_place", sa.String(length=100), nullable=True),
        sa.Column("tracking_number", sa.String(length=40), nullable=True),
        sa.Column("notice", sa.String(length=500), nullable=False),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certify_certificates.id"],
            name=op.f("fk_certify_deliveries_certificate_id_certify_certificates"),
        ),
        sa.PrimaryKeyConstraint("certificate_id", name=op.f("pk_certify_deliveries")),
    )
    op.create_table(
        "certify_revocations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("certificate_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_on", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certify_certificates.id"],
            name=op.f("fk_certify_revocations_certificate_id_certify_certificates"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certify_revocations")),
    )


def downgrade() -> None:
    op.drop_table("certify_revocations")
    op.drop_table("certify_deliveries")
    op.drop_table("certify_decisions")
    with op.batch_alter_table("certify_checks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_certify_checks_application_id"))

    op.drop_table("certify_checks")
    with op.batch_alter_table("certify_certificates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_certify_certificates_application_id"))

    op.drop_table("certify_certificates")
    with op.batch_alter_table("certify_applications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_certify_applications_batch_id"))

    op.drop_table("certify_applications")
    op.drop_table("certify_slots")
    op.drop_table("certify_announcements")
    op.drop_table("certify_certificate_sequences")
    op.drop_table("certify_batches")
