"""Corrections over HTTP (R10), both databases: an officer files a corrected conclusion, a
second officer approves it (the filer cannot), the custodian signs it; the superseded decision
stays readable and says what superseded it; the approval → refusal correction files the
certificate's revocation, which two officers approve before it is signed; the corrected
reissue and the revoked certificate name each other."""

from __future__ import annotations

import pytest

from reliability.test_concurrent_limits import PARALLEL, POSTGRES_ONLY, _race
from test_certify.test_http_flow import (
    API,
    Desk,
    _decided,
    _open_batch,
    _signed_payload,
    desk,
)

__all__ = ["desk"]  # the fixture, shared with the whole-flow tests
WHY = "the degree certificate was found forged after the conclusion"


def _sign_decisions(desk: Desk, batch_id: int) -> list[str]:
    desk.session("decision-1")
    signed: list[str] = desk.ok("POST", f"{API}/batches/{batch_id}/decisions/sign", desk.custodian)[
        "signed"
    ]
    return signed


def _issue(desk: Desk, batch_id: int) -> str:
    desk.session("certificate-1")
    issued = desk.ok("POST", f"{API}/batches/{batch_id}/certificates", desk.custodian, {})
    number: str = issued["issued"][0]
    return number


def test_a_correction_over_http(desk: Desk) -> None:
    batch_id = _open_batch(desk)
    first = _decided(desk, batch_id, 61, "approve", "all checks passed")
    _sign_decisions(desk, batch_id)
    number = _issue(desk, batch_id)

    refusal = {"outcome": "refuse", "reasons": "degree forged", "reason": WHY}
    path = f"{API}/decisions/{first}/correction"
    assert desk.call("POST", path, desk.registrar, refusal).status_code == 403
    short = desk.call("POST", path, desk.officer, {**refusal, "reason": "wrong"})
    assert short.status_code == 422 and "reason" in short.json()["detail"]
    filed = desk.ok("POST", path, desk.officer, refusal)
    assert (filed["supersedes_id"], filed["correction_reason"]) == (first, WHY)
    application_id = filed["application_id"]
    case = desk.ok("GET", f"{API}/applications/{application_id}", desk.officer)
    assert case["decision"]["id"] == filed["id"] and case["decision"]["outcome"] == "refuse"
    listed = desk.ok("GET", f"{API}/batches/{batch_id}/decisions", desk.officer)
    assert [(d["id"], d["superseded"]) for d in listed] == [(first, True), (filed["id"], False)]

    approval = f"{API}/decisions/{filed['id']}/correction/approval"
    own = desk.call("POST", approval, desk.officer)
    assert own.status_code == 409 and "not the one who filed it" in own.json()["detail"]
    assert _sign_decisions(desk, batch_id) == []  # refused: awaits the second officer
    approved = desk.ok("POST", approval, desk.officer_2)
    assert approved["decision"]["correction_approved_by"] == desk.officer_2.username
    revocation_id = approved["revocation_id"]
    assert revocation_id is not None
    assert _sign_decisions(desk, batch_id) == [f"DEC-{filed['id']}"]
    payload = _signed_payload(desk, "decision", f"DEC-{filed['id']}")
    assert (payload["supersedes"], payload["correction"]) == (f"DEC-{first}", WHY)
    old = desk.ok("GET", f"/api/v1/signing/documents/decision/DEC-{first}", desk.officer)
    assert old["superseded_by"] == f"DEC-{filed['id']}"  # still verifiable, no longer in force

    # The revocation the correction filed: two officers, then the custodian, as any other.
    for officer in (desk.officer, desk.officer_2):
        desk.ok(
            "POST",
            f"{API}/revocations/{revocation_id}/approvals",
            officer,
            {"reason": "the correction stands"},
        )
    desk.session("revocation-1")
    body = {"revocation_ids": [revocation_id]}
    desk.ok("POST", f"{API}/revocations/sign", desk.custodian, body)
    revoked = desk.ok("GET", f"{API}/certificates/{number}", desk.officer)
    assert revoked["status"] == "revoked"

    # Refusal → approval: the reissue replaces the revoked certificate, and each names the other.
    back = {
        "outcome": "approve",
        "reasons": "degree confirmed",
        "reason": "the police report was withdrawn",
    }
    corrected = desk.ok("POST", f"{API}/decisions/{filed['id']}/correction", desk.officer_2, back)
    desk.ok("POST", f"{API}/decisions/{corrected['id']}/correction/approval", desk.officer)
    _sign_decisions(desk, batch_id)
    reissued = _issue(desk, batch_id)
    assert desk.ok("GET", f"{API}/certificates/{reissued}", desk.officer)["replaces"] == number
    assert desk.ok("GET", f"{API}/certificates/{number}", desk.officer)["replaced_by"] == reissued


@pytest.mark.parametrize("db_url", POSTGRES_ONLY, indirect=True)
def test_parallel_corrections_of_one_decision_make_one(desk: Desk) -> None:
    """The old decision's row is locked while it is superseded: one correction wins, the
    others are answered 409, and the case keeps one live decision."""
    batch_id = _open_batch(desk)
    first = _decided(desk, batch_id, 62, "refuse", "degree not recognised")
    _sign_decisions(desk, batch_id)
    refusal = {"outcome": "refuse", "reasons": "other grounds", "reason": WHY}
    path = f"{API}/decisions/{first}/correction"
    codes = _race(lambda: desk.call("POST", path, desk.officer, refusal))
    assert sorted(codes) == [201] + [409] * (PARALLEL - 1), codes
    listed = desk.ok("GET", f"{API}/batches/{batch_id}/decisions", desk.officer)
    assert [d["superseded"] for d in listed] == [True, False]
