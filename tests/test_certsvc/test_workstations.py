"""Workstations and the signed-request scheme, end to end through the custodian probe and,
for what a GET cannot carry, through `verify_request` itself."""

from __future__ import annotations

import base64
import hashlib
import re
import stat
import time
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from audit.events import decode_leaf
from audit.models import AuditEventRow
from certsvc.accounts import Role, get_account
from certsvc.settings import Settings
from certsvc.workstations import (
    RequestSignatureError,
    WorkstationNonce,
    disable_workstation,
    generate_workstation_key,
    get_workstation,
    load_workstation_key,
    parse_public_key,
    register_workstation,
    sign_request,
    verify_request,
)
from common.dbtypes import utcnow
from common.errors import Conflict, InvalidInput, NotFound
from common.unit_of_work import unit_of_work
from service_helpers import MakeStaff, StaffMember

PROBE = "/api/v1/custodian/workstation"


def probe(client: TestClient, headers: dict[str, str], path: str = PROBE) -> tuple[int, str]:
    response = client.get(path, headers=headers)
    return response.status_code, str(response.json().get("detail", response.json()))


@pytest.fixture
def custodian(make_staff: MakeStaff) -> StaffMember:
    return make_staff(Role.CUSTODIAN, workstation=True)


def test_signed_request_is_accepted(client: TestClient, custodian: StaffMember) -> None:
    response = client.get(PROBE, headers=custodian.signed("GET", PROBE))
    assert response.status_code == 200
    assert response.json() == {
        "workstation": custodian.workstation,
        "custodian": custodian.username,
    }


def test_signature_covers_the_query_string(client: TestClient, custodian: StaffMember) -> None:
    path = f"{PROBE}?page=2&q=%E6%9D%8E"
    assert probe(client, custodian.signed("GET", path), path)[0] == 200
    assert probe(client, custodian.signed("GET", f"{PROBE}?page=3"), path)[0] == 401


def test_sign_request_headers() -> None:
    headers = sign_request(Ed25519PrivateKey.generate(), "ws-1", "get", "/x", b"", "", 1700000000)
    assert headers["Certsvc-Workstation"] == "ws-1"
    assert headers["Certsvc-Timestamp"] == "1700000000"
    assert re.fullmatch(r"[A-Za-z0-9_-]{16,64}", headers["Certsvc-Nonce"])
    assert re.fullmatch(r"[A-Za-z0-9_-]{86}", headers["Certsvc-Signature"])


def test_signed_message_is_the_documented_one(custodian: StaffMember) -> None:
    """Recompute the message from the documentation, as a client in another language would."""
    assert custodian.workstation_key is not None and custodian.workstation is not None
    body, authorization = b'{"a":1}', custodian.auth["Authorization"]
    headers = sign_request(
        custodian.workstation_key, custodian.workstation, "post", "/p?q=1", body, authorization
    )
    message = "\n".join(
        [
            "certsvc-request-v1",
            "POST",
            "/p?q=1",
            headers["Certsvc-Timestamp"],
            headers["Certsvc-Nonce"],
            custodian.workstation,
            hashlib.sha256(body).hexdigest(),
            hashlib.sha256(authorization.encode()).hexdigest(),
        ]
    ).encode()
    signature = base64.urlsafe_b64decode(headers["Certsvc-Signature"] + "==")
    custodian.workstation_key.public_key().verify(signature, message)


def test_wrong_key_is_refused_and_audited(
    client: TestClient, custodian: StaffMember, sessions: sessionmaker[Session]
) -> None:
    assert custodian.workstation is not None
    headers = {
        **custodian.auth,
        **sign_request(
            Ed25519PrivateKey.generate(),
            custodian.workstation,
            "GET",
            PROBE,
            b"",
            custodian.auth["Authorization"],
        ),
    }
    status, detail = probe(client, headers)
    assert status == 401
    assert detail == (
        f"Certsvc-Signature: does not verify with the key of workstation '{custodian.workstation}'"
    )
    # A security officer sees the attempt: who, where to, and why it was refused.
    with sessions() as db:
        row = db.scalars(
            select(AuditEventRow).where(AuditEventRow.action == "service.workstation_proof")
        ).one()
    event = decode_leaf(row.leaf)
    assert (event["actor"], event["outcome"], event["object"]) == (
        custodian.username,
        "refused",
        f"GET {PROBE}",
    )
    assert str(event["reason"]).startswith("Certsvc-Signature: does not verify")


@pytest.mark.parametrize(
    ("method", "path"), [("POST", PROBE), ("GET", "/api/v1/custodian/other"), ("GET", "/")]
)
def test_tampered_method_or_path(
    client: TestClient, custodian: StaffMember, method: str, path: str
) -> None:
    status, detail = probe(client, custodian.signed(method, path))
    assert status == 401
    assert detail.startswith("Certsvc-Signature: does not verify")


def test_replayed_nonce(client: TestClient, custodian: StaffMember) -> None:
    headers = custodian.signed("GET", PROBE)
    assert probe(client, headers)[0] == 200
    assert probe(client, headers) == (401, "Certsvc-Nonce: already used (a replayed request)")


@pytest.mark.parametrize("offset", [-310, 310])
def test_timestamp_outside_skew(client: TestClient, custodian: StaffMember, offset: int) -> None:
    headers = custodian.signed("GET", PROBE, now=time.time() + offset)
    assert probe(client, headers) == (
        401,
        "Certsvc-Timestamp: more than 300 s away from the server's clock",
    )


def test_another_custodians_workstation(
    client: TestClient, custodian: StaffMember, make_staff: MakeStaff
) -> None:
    other = make_staff(Role.CUSTODIAN, workstation=True)
    assert other.workstation_key is not None and other.workstation is not None
    headers = {
        **custodian.auth,
        **sign_request(
            other.workstation_key,
            other.workstation,
            "GET",
            PROBE,
            b"",
            custodian.auth["Authorization"],
        ),
    }
    assert probe(client, headers) == (
        401,
        f"workstation '{other.workstation}' is not in your custody",
    )


def test_another_persons_bearer_token_with_the_same_signature(
    client: TestClient, custodian: StaffMember, make_staff: MakeStaff
) -> None:
    other = make_staff(Role.CUSTODIAN, workstation=True)
    headers = {**custodian.signed("GET", PROBE), **other.auth}
    status, detail = probe(client, headers)
    assert status == 401
    assert detail == f"workstation '{custodian.workstation}' is not in your custody"


def test_signature_is_bound_to_the_bearer_token(client: TestClient, custodian: StaffMember) -> None:
    second = client.post(
        "/api/v1/auth/token",
        json={"username": custodian.username, "password": custodian.password},
    ).json()["token"]
    headers = {**custodian.signed("GET", PROBE), "Authorization": f"Bearer {second}"}
    status, detail = probe(client, headers)
    assert status == 401
    assert detail.startswith("Certsvc-Signature: does not verify")


def test_disabled_workstation(
    client: TestClient, custodian: StaffMember, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as db:
        disable_workstation(db, f"ws-{custodian.username}")
    assert probe(client, custodian.signed("GET", PROBE)) == (
        401,
        f"workstation '{custodian.workstation}' is disabled",
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"Certsvc-Workstation": None}, "missing header Certsvc-Workstation"),
        ({"Certsvc-Signature": None}, "missing header Certsvc-Signature"),
        ({"Certsvc-Workstation": "ws-nowhere"}, "workstation 'ws-nowhere' is not registered"),
        ({"Certsvc-Workstation": "WS 1"}, "Certsvc-Workstation: not a valid workstation name"),
        ({"Certsvc-Timestamp": "12.5"}, "Certsvc-Timestamp: not a whole number of unix seconds"),
        ({"Certsvc-Nonce": "short"}, "Certsvc-Nonce: 16–64 characters of A-Z a-z 0-9 _ -"),
        ({"Certsvc-Signature": "AAAA"}, "Certsvc-Signature: not a base64url signature"),
    ],
)
def test_malformed_headers(
    client: TestClient,
    custodian: StaffMember,
    change: dict[str, str | None],
    message: str,
) -> None:
    headers: dict[str, str] = {}
    for name, value in {**custodian.signed("GET", PROBE), **change}.items():
        if value is not None:
            headers[name] = value
    status, detail = probe(client, headers)
    assert status == 401
    assert detail.startswith(message)


def test_failure_challenges_for_a_signature(client: TestClient, custodian: StaffMember) -> None:
    response = client.get(PROBE, headers=custodian.auth)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Certsvc-Signature"


def test_tampered_body(
    sessions: sessionmaker[Session], custodian: StaffMember, settings: Settings
) -> None:
    assert custodian.workstation_key is not None and custodian.workstation is not None
    authorization = custodian.auth["Authorization"]
    path = "/api/v1/anything"
    headers = sign_request(
        custodian.workstation_key, custodian.workstation, "POST", path, b'{"n":1}', authorization
    )

    def verify(body: bytes) -> None:
        with unit_of_work(sessions) as db:
            verify_request(
                db,
                account=get_account(db, custodian.username),
                method="POST",
                path=path,
                body=body,
                authorization=authorization,
                headers=headers,
                max_skew_seconds=settings.request_max_skew_seconds,
            )

    with pytest.raises(RequestSignatureError, match="does not verify"):
        verify(b'{"n":2}')
    verify(b'{"n":1}')
    with pytest.raises(RequestSignatureError, match="already used"):
        verify(b'{"n":1}')


def test_old_nonces_are_purged(
    client: TestClient, custodian: StaffMember, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as db:
        workstation = get_workstation(db, f"ws-{custodian.username}")
        db.add(
            WorkstationNonce(
                workstation_id=workstation.id,
                nonce="o" * 16,
                seen_at=utcnow() - timedelta(seconds=601),
            )
        )
        db.add(
            WorkstationNonce(
                workstation_id=workstation.id,
                nonce="r" * 16,
                seen_at=utcnow() - timedelta(seconds=300),  # well inside, however slow the run
            )
        )
    assert probe(client, custodian.signed("GET", PROBE))[0] == 200
    with sessions() as db:
        nonces = set(db.scalars(select(WorkstationNonce.nonce)))
        assert "o" * 16 not in nonces and "r" * 16 in nonces
        assert db.scalar(select(func.count()).select_from(WorkstationNonce)) == 2


def test_generate_and_load_workstation_key(tmp_path: Path) -> None:
    path = tmp_path / "ws.pem"
    public = generate_workstation_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_workstation_key(path).public_key() == public
    with pytest.raises(Conflict, match="already exists"):
        generate_workstation_key(path)
    assert load_workstation_key(path).public_key() == public


def test_parse_public_key_forms() -> None:
    key = Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert parse_public_key(raw) == key
    assert parse_public_key(pem.decode()) == key
    rsa_pem = (
        generate_private_key(65537, 2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(InvalidInput, match="public_key: neither an Ed25519 nor an ECDSA P-256 key"):
        parse_public_key(rsa_pem)
    with pytest.raises(InvalidInput, match="public_key: not a PEM public key"):
        parse_public_key("hello")


def test_register_rules(session: Session, make_staff: MakeStaff) -> None:
    officer = make_staff(Role.OFFICER)
    custodian = make_staff(Role.CUSTODIAN)
    key = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(InvalidInput, match="custodian: 'officer1' must have the custodian or"):
        register_workstation(session, "ws-a", officer.username, key)
    with pytest.raises(NotFound, match="username: no account 'nobody'"):
        register_workstation(session, "ws-a", "nobody", key)
    with pytest.raises(InvalidInput, match="name: 2–64 characters"):
        register_workstation(session, "WS A", custodian.username, key)
    register_workstation(session, "ws-a", custodian.username, key)
    with pytest.raises(Conflict, match="name: workstation 'ws-a' is already registered"):
        register_workstation(session, "ws-a", custodian.username, key)


def test_parse_public_key_takes_p256_and_no_other_curve() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert parse_public_key(pem) == key
    p384 = (
        ec.generate_private_key(ec.SECP384R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(InvalidInput, match="public_key: neither an Ed25519 nor an ECDSA P-256"):
        parse_public_key(p384)


@pytest.fixture
def browser_custodian(make_staff: MakeStaff) -> StaffMember:
    """A custodian whose workstation key is ECDSA P-256, as a browser's WebCrypto key is."""
    return make_staff(Role.CUSTODIAN, workstation=True, p256=True)


def _der_form(headers: dict[str, str]) -> dict[str, str]:
    """The same request's signature re-encoded from r || s (WebCrypto) to DER."""
    raw = base64.urlsafe_b64decode(headers["Certsvc-Signature"] + "==")
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    der = encode_dss_signature(r, s)
    return {**headers, "Certsvc-Signature": base64.urlsafe_b64encode(der).rstrip(b"=").decode()}


def test_p256_signatures_verify_as_r_s_and_as_der(
    client: TestClient, browser_custodian: StaffMember
) -> None:
    p1363 = browser_custodian.signed("GET", PROBE)
    assert len(base64.urlsafe_b64decode(p1363["Certsvc-Signature"] + "==")) == 64
    assert probe(client, p1363) == (
        200,
        str(
            {"workstation": browser_custodian.workstation, "custodian": browser_custodian.username}
        ),
    )
    der = _der_form(browser_custodian.signed("GET", PROBE))
    assert len(base64.urlsafe_b64decode(der["Certsvc-Signature"] + "==")) > 64
    assert probe(client, der)[0] == 200


def test_p256_signatures_that_must_fail(client: TestClient, browser_custodian: StaffMember) -> None:
    assert browser_custodian.workstation is not None
    # another P-256 key; the right key over another path; r and s swapped; a truncated r || s.
    other = sign_request(
        ec.generate_private_key(ec.SECP256R1()),
        browser_custodian.workstation,
        "GET",
        PROBE,
        b"",
        browser_custodian.auth["Authorization"],
    )
    refusals = [{**browser_custodian.auth, **other}]
    refusals.append(browser_custodian.signed("GET", "/api/v1/custodian/other"))
    swapped = browser_custodian.signed("GET", PROBE)
    raw = base64.urlsafe_b64decode(swapped["Certsvc-Signature"] + "==")
    swapped["Certsvc-Signature"] = (
        base64.urlsafe_b64encode(raw[32:] + raw[:32]).rstrip(b"=").decode()
    )
    refusals.append(swapped)
    der = _der_form(browser_custodian.signed("GET", PROBE))
    der["Certsvc-Signature"] = der["Certsvc-Signature"][:-2]  # DER cut short
    refusals.append(der)
    for headers in refusals:
        status, detail = probe(client, headers)
        assert status == 401
        assert detail.startswith("Certsvc-Signature: does not verify"), detail


def test_p256_key_is_stored_as_its_point_and_an_ed25519_key_stays_raw(
    session: Session, browser_custodian: StaffMember, custodian: StaffMember
) -> None:
    assert browser_custodian.workstation and custodian.workstation
    browser = get_workstation(session, browser_custodian.workstation)
    assert len(browser.public_key) == 65 and browser.public_key[0] == 4
    assert len(get_workstation(session, custodian.workstation).public_key) == 32
