"""Applicants as the case database holds them: tokens and the facts derived at intake (birth
date, sex, issuing region), never a raw identifier. Plus the bookkeeping that makes a bulk
import resumable and its row errors reportable."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from common.db import Base
from common.dbtypes import UTCDateTime, utcnow

LIVE_CERTIFICATE = "status IN ('pending', 'issued')"
FIRST_DECISION = "supersedes_id IS NULL"


class Applicant(Base):
    __tablename__ = "applicants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # One applicant per person: the ID number's token is convergent.
    id_number_token: Mapped[str] = mapped_column(String(40), unique=True)
    name_token: Mapped[str] = mapped_column(String(40))
    phone_token: Mapped[str | None] = mapped_column(String(40))
    email_token: Mapped[str | None] = mapped_column(String(40))
    address_token: Mapped[str | None] = mapped_column(String(40))
    birth_date: Mapped[date] = mapped_column(Date)
    import_id: Mapped[int | None] = mapped_column(ForeignKey("applicant_imports.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApplicantImport(Base):
    """One CSV file's import, recognised again by its SHA-256 so that a re-run resumes."""

    __tablename__ = "applicant_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    file_name: Mapped[str] = mapped_column(String(255))
    encoding: Mapped[str] = mapped_column(String(16))
    # Data rows handled and committed so far: a re-run starts after them.
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    imported: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    invalid: Mapped[int] = mapped_column(Integer, default=0)
    started_by: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApplicantImportError(Base):
    """Why a row was not imported: field and rule, never the value."""

    __tablename__ = "applicant_import_errors"

    import_id: Mapped[int] = mapped_column(
        ForeignKey("applicant_imports.id", ondelete="CASCADE"), primary_key=True
    )
    row: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    field: Mapped[str] = mapped_column(String(32), primary_key=True)
    reason: Mapped[str] = mapped_column(String(255))


class Batch(Base):
    """One certification round of a body ("2020 first half"), with its R3 dates; the decision
    deadline is computed in Chinese working days when the batch is created."""

    __tablename__ = "certify_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    body_code: Mapped[str] = mapped_column(String(6))
    registration_opens: Mapped[date] = mapped_column(Date)
    registration_closes: Mapped[date] = mapped_column(Date)
    confirmation_starts: Mapped[date] = mapped_column(Date)
    confirmation_ends: Mapped[date] = mapped_column(Date)
    decision_deadline: Mapped[date] = mapped_column(Date)
    closes_on: Mapped[date] = mapped_column(Date)
    # The eligibility rule table in force when the batch was created (0: national minimums).
    rule_version: Mapped[int] = mapped_column(Integer, default=0)
    # An officer's extension of registration past `registration_closes`, with the reason.
    registration_extended_until: Mapped[date | None] = mapped_column(Date)
    registration_extended_by: Mapped[str | None] = mapped_column(String(64))
    registration_extension_reason: Mapped[str | None] = mapped_column(String(500))
    # The implementation plan filed with the provincial centre before announcing (二(一)).
    plan_filed_on: Mapped[date | None] = mapped_column(Date)
    plan_reference: Mapped[str | None] = mapped_column(String(64))
    plan_recorded_by: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConfirmationSlot(Base):
    """A time and place for on-site confirmation with a capacity: appointments spread the
    crowd."""

    __tablename__ = "certify_slots"
    __table_args__ = (UniqueConstraint("batch_id", "starts_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("certify_batches.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Where the applicant confirms: announced with the time (二(二)).
    place: Mapped[str] = mapped_column(String(100))
    capacity: Mapped[int] = mapped_column(Integer)
    booked: Mapped[int] = mapped_column(Integer, default=0)


class Application(Base):
    """An applicant's case in a batch: by applicant id only (tokens live on the applicant)."""

    __tablename__ = "certify_applications"
    __table_args__ = (UniqueConstraint("batch_id", "applicant_id", "qualification"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("certify_batches.id"), index=True)
    applicant_id: Mapped[int] = mapped_column(ForeignKey("applicants.id"))
    qualification: Mapped[str] = mapped_column(String(2))
    subject: Mapped[str] = mapped_column(String(2))
    slot_id: Mapped[int | None] = mapped_column(ForeignKey("certify_slots.id"))
    queue_number: Mapped[int | None] = mapped_column(Integer)
    # R3: an officer's deadline override, counted once a second officer approved it and
    # until it expires.
    override_by: Mapped[str | None] = mapped_column(String(64))
    override_reason: Mapped[str | None] = mapped_column(String(500))
    override_category: Mapped[str | None] = mapped_column(String(16))
    override_expires_on: Mapped[date | None] = mapped_column(Date)
    override_approved_by: Mapped[str | None] = mapped_column(String(64))
    override_approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    override_person: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Training(Base):
    """A staff member trained for a batch before on-site confirmation starts (二(三)): only
    trained staff confirm its cases."""

    __tablename__ = "certify_trainings"

    batch_id: Mapped[int] = mapped_column(ForeignKey("certify_batches.id"), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    trained_on: Mapped[date] = mapped_column(Date)
    recorded_by: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Attendance(Base):
    """The applicant came to on-site confirmation: who confirmed them, when, where, and the
    national system's reference for the confirmation. An approval needs it."""

    __tablename__ = "certify_attendances"

    application_id: Mapped[int] = mapped_column(
        ForeignKey("certify_applications.id"), primary_key=True
    )
    confirmed_by: Mapped[str] = mapped_column(String(64))
    confirmed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    place: Mapped[str] = mapped_column(String(100))
    national_reference: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CaseCheck(Base):
    """One attempt at one check (R1, R2): the outcome, its source and who recorded it — never
    a copy of a document. Attempts are kept: the latest one counts."""

    __tablename__ = "certify_checks"
    __table_args__ = (UniqueConstraint("application_id", "kind", "attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("certify_applications.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    result: Mapped[str] = mapped_column(String(16))
    # What the comparison found (degree level, Mandarin grade, exam result), beside the result.
    value: Mapped[str | None] = mapped_column(String(32))
    source_system: Mapped[str] = mapped_column(String(64))
    reference: Mapped[str] = mapped_column(String(64))
    # The criminal-record check's police answer: issuing unit and date (reference: its number).
    police_unit: Mapped[str | None] = mapped_column(String(100))
    police_issued_on: Mapped[date | None] = mapped_column(Date)
    # A non-clear result this attempt replaced: it counts once a second officer approves.
    replaces_result: Mapped[str | None] = mapped_column(String(16))
    approved_by: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_by: Mapped[str] = mapped_column(String(64))
    # The natural person behind `recorded_by`: a replacement's approver must be another one.
    recorded_person: Mapped[str | None] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Decision(Base):
    """An officer's conclusion; signed by the custodian with a decision key. A correction is a
    new decision naming the one it supersedes (R10): a case's decisions form one chain whose
    last link is the live one; superseded ones are kept, marked, never edited."""

    __tablename__ = "certify_decisions"
    # One first decision per case, and each decision superseded at most once: one live decision.
    __table_args__ = (
        Index(
            "uq_certify_decisions_first",
            "application_id",
            unique=True,
            sqlite_where=text(FIRST_DECISION),
            postgresql_where=text(FIRST_DECISION),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("certify_applications.id"), index=True)
    outcome: Mapped[str] = mapped_column(String(8))
    reasons: Mapped[str] = mapped_column(String(500))
    decided_by: Mapped[str] = mapped_column(String(64))
    # The natural person behind `decided_by`: a correction's approver must be another one.
    decided_by_person: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A correction: the decision it supersedes (in its signed content), why, and the second
    # officer who approved it; it is signed only once approved.
    supersedes_id: Mapped[int | None] = mapped_column(
        ForeignKey("certify_decisions.id"), unique=True
    )
    correction_reason: Mapped[str | None] = mapped_column(String(500))
    correction_approved_by: Mapped[str | None] = mapped_column(String(64))
    correction_approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set on the old decision when a correction supersedes it.
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CertificateSequence(Base):
    """The last sequence number used per (year, body): one row-locked counter."""

    __tablename__ = "certify_certificate_sequences"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    body_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


class Certificate(Base):
    """A certificate: reserved (pending) with its number and verification id, then signed and
    published (issued), perhaps later revoked."""

    __tablename__ = "certify_certificates"
    # One live (pending or issued) certificate per application, whatever runs in parallel.
    __table_args__ = (
        Index(
            "uq_certify_certificates_live_application",
            "application_id",
            unique=True,
            sqlite_where=text(LIVE_CERTIFICATE),
            postgresql_where=text(LIVE_CERTIFICATE),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("certify_applications.id"), index=True)
    number: Mapped[str] = mapped_column(String(17), unique=True)
    verification_id: Mapped[str] = mapped_column(String(32), unique=True)
    masked_name: Mapped[str] = mapped_column(String(32))
    issue_date: Mapped[date] = mapped_column(Date)
    issued_at: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(8))
    qr_text: Mapped[str | None] = mapped_column(String(2000))
    issued_by: Mapped[str | None] = mapped_column(String(64))
    # The signed approval it was issued on, and the revoked certificate a corrected reissue
    # replaces (its number, in the signed content).
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("certify_decisions.id"))
    replaces: Mapped[str | None] = mapped_column(String(17))


class Delivery(Base):
    """How the holder gets the printed certificate (R4), and the notice they were sent."""

    __tablename__ = "certify_deliveries"

    certificate_id: Mapped[int] = mapped_column(
        ForeignKey("certify_certificates.id"), primary_key=True
    )
    method: Mapped[str] = mapped_column(String(8))
    pickup_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pickup_place: Mapped[str | None] = mapped_column(String(100))
    tracking_number: Mapped[str | None] = mapped_column(String(40))
    notice: Mapped[str] = mapped_column(String(500))
    notified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recorded_by: Mapped[str] = mapped_column(String(64))


class Revocation(Base):
    """R10: a revocation request, approved by two officers, signed, then applied."""

    __tablename__ = "certify_revocations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    certificate_id: Mapped[int] = mapped_column(ForeignKey("certify_certificates.id"))
    category: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(500))
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_on: Mapped[date | None] = mapped_column(Date)
    # The printed certificate handed back to the body (收回证书), once revoked.
    returned_on: Mapped[date | None] = mapped_column(Date)
    return_recorded_by: Mapped[str | None] = mapped_column(String(64))
    return_note: Mapped[str | None] = mapped_column(String(200))


class Announcement(Base):
    """A published text (R5, R8), stored only after the checker passed it."""

    __tablename__ = "certify_announcements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("certify_batches.id"))
    text: Mapped[str] = mapped_column(Text)
    published_by: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A 公示 of conclusions: objections are taken up to and including this day.
    objections_until: Mapped[date | None] = mapped_column(Date)


class HolidaySchedule(Base):
    """A year's holidays and adjusted workdays imported from the State Council's notice, used
    before the calendar package for that year (dates as space-separated ISO text)."""

    __tablename__ = "holiday_schedules"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    source: Mapped[str] = mapped_column(String(200))
    holidays: Mapped[str] = mapped_column(Text)
    workdays: Mapped[str] = mapped_column(Text)
    file_sha256: Mapped[str] = mapped_column(String(64))
    imported_by: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RuleTableRow(Base):
    """A province's eligibility rule table as loaded (R0): versions are kept, the newest is in
    force for batches created after it; version 0 is the national table in the package."""

    __tablename__ = "certify_rule_tables"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    document: Mapped[str] = mapped_column(String(200))
    content: Mapped[str] = mapped_column(Text)
    file_sha256: Mapped[str] = mapped_column(String(64))
    loaded_by: Mapped[str] = mapped_column(String(64))
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApplicantRequest(Base):
    """An applicant's objection, request or complaint (四(二)), answered within working days:
    what it is about in a few words (no personal value), when it is due, who answered."""

    __tablename__ = "certify_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("certify_batches.id"), index=True)
    # Indexed: every signature of a case looks for its unanswered objections.
    application_id: Mapped[int | None] = mapped_column(
        ForeignKey("certify_applications.id"), index=True
    )
    # An objection's 公示 (the announcement of conclusions it was filed against).
    announcement_id: Mapped[int | None] = mapped_column(ForeignKey("certify_announcements.id"))
    kind: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(String(500))
    received_on: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date] = mapped_column(Date)
    recorded_by: Mapped[str] = mapped_column(String(64))
    answered_on: Mapped[date | None] = mapped_column(Date)
    answer: Mapped[str | None] = mapped_column(String(500))
    answered_by: Mapped[str | None] = mapped_column(String(64))
