"""Limits that hold under parallel requests on PostgreSQL (SQLite serialises writers; here
they really race): parallel issue calls for one application make one certificate, parallel
approvals of one revocation by one officer count once, parallel bookings of one application
take one place — the losers answered 409, never 500."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from certify.models import Application, Certificate, ConfirmationSlot, Decision
from signer.models import RevocationApproval
from test_certify.test_http_flow import (
    API,
    BATCH,
    PLACE,
    Desk,
    _decided,
    _extend,
    _intake,
    _open_batch,
    _person,
)
from test_certify.test_http_flow import desk as desk
from verify.models import PublicCertificate

POSTGRES_ONLY = [pytest.param("postgresql", marks=pytest.mark.postgres)]
PARALLEL = 6


def _race(call: Callable[[], Any]) -> list[int]:
    """`call` from PARALLEL threads released at once; the status codes."""
    start = threading.Barrier(PARALLEL)

    def one(_: int) -> int:
        start.wait()
        return int(call().status_code)

    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(one, range(PARALLEL)))


def _approved_case(desk: Desk, sessions: sessionmaker[Session], batch_id: int, seed: int) -> int:
    """A case booked, confirmed on site and checked, approved past its 2020 deadline (an
    override a second officer approved); its application id."""
    decision_id = _decided(desk, batch_id, seed, "approve", "all checks passed")
    with sessions() as db:
        return db.get_one(Decision, decision_id).application_id


def _issued(
    desk: Desk, sessions: sessionmaker[Session], batch_id: int, seed: int
) -> tuple[int, str]:
    application_id = _approved_case(desk, sessions, batch_id, seed)
    desk.session("decision-1")
    desk.ok("POST", f"{API}/batches/{batch_id}/decisions/sign", desk.custodian)
    desk.session("certificate-1")
    body = {"application_ids": [application_id]}
    number: str = desk.ok("POST", f"{API}/batches/{batch_id}/certificates", desk.custodian, body)[
        "issued"
    ][0]
    return application_id, number


@pytest.mark.parametrize("db_url", POSTGRES_ONLY, indirect=True)
def test_parallel_issue_calls_make_one_certificate(
    desk: Desk, sessions: sessionmaker[Session]
) -> None:
    batch_id = _open_batch(desk)
    application_id = _approved_case(desk, sessions, batch_id, 61)
    desk.session("decision-1")
    desk.ok("POST", f"{API}/batches/{batch_id}/decisions/sign", desk.custodian)
    desk.session("certificate-1")
    body = {"application_ids": [application_id]}
    path = f"{API}/batches/{batch_id}/certificates"
    codes = _race(lambda: desk.call("POST", path, desk.custodian, body))
    assert set(codes) <= {200, 409} and 200 in codes, codes
    with sessions() as db:
        certificates = db.scalars(
            select(Certificate).where(Certificate.application_id == application_id)
        ).all()
        assert len(certificates) == 1 and certificates[0].status == "issued"
        published = db.scalar(
            select(func.count())
            .select_from(PublicCertificate)
            .where(PublicCertificate.number == certificates[0].number)
        )
        assert published == db.scalar(select(func.count()).select_from(PublicCertificate)) == 1


@pytest.mark.parametrize("db_url", POSTGRES_ONLY, indirect=True)
def test_parallel_approvals_by_one_officer_count_once(
    desk: Desk, sessions: sessionmaker[Session]
) -> None:
    batch_id = _open_batch(desk)
    _, number = _issued(desk, sessions, batch_id, 62)
    filed = desk.ok(
        "POST",
        f"{API}/certificates/{number}/revocations",
        desk.officer,
        {"category": "error", "reason": "conclusion corrected"},
    )
    approval = {"revocation_id": filed["id"], "reason": "checked the file"}
    codes = _race(lambda: desk.call("POST", "/api/v1/signing/approvals", desk.officer, approval))
    assert sorted(codes) == [201] + [409] * (PARALLEL - 1), codes
    with sessions() as db:
        officers = db.scalars(
            select(RevocationApproval.officer).where(
                RevocationApproval.document_id == filed["document_id"]
            )
        ).all()
    assert officers == ["officer"]


@pytest.mark.parametrize("db_url", POSTGRES_ONLY, indirect=True)
def test_parallel_bookings_of_one_application_take_one_place(
    desk: Desk, sessions: sessionmaker[Session]
) -> None:
    batch_id = desk.ok("POST", f"{API}/batches", desk.officer, BATCH)["id"]
    slot = {"starts_at": "2020-07-06T09:00:00+08:00", "place": PLACE, "capacity": PARALLEL}
    slot_id = desk.ok("POST", f"{API}/batches/{batch_id}/slots", desk.officer, slot)["id"]
    _extend(desk, batch_id)
    application_id = _intake(desk, batch_id, _person(63), "02")["id"]
    path = f"{API}/applications/{application_id}/booking"
    codes = _race(lambda: desk.call("POST", path, desk.registrar, {"slot_id": slot_id}))
    assert sorted(codes) == [201] + [409] * (PARALLEL - 1), codes
    with sessions() as db:
        assert db.get_one(ConfirmationSlot, slot_id).booked == 1
        assert db.get_one(Application, application_id).queue_number == 1
