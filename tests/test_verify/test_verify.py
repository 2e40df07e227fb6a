"""Public verification, online and offline, from a real QR image to a revoked status."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from server_support import CERTSVC
from verify.payload import (
    Claims,
    new_verification_id,
    offline_text,
    parse_qr_text,
    qr_text,
    sign_claims,
    verification_url,
)
from verify.qrimage import MAX_VERSION, decode_image, qr_version, write_png
from verify.register import retire_key
from verify.trust import latest_revocation_list
from verify_support import PRIVATE, Demo

ID_NUMBER_RE = re.compile(r"\d{17}[\dXx]")
PHONE_RE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


def _path(text: str) -> str:
    return "/" + text.split("#")[0].split("/", 3)[3]


def test_qr_image_decodes_to_the_url_and_the_page_says_valid(demo: Demo, tmp_path: Path) -> None:
    issued = demo.certificate("20204100000000001")
    png = tmp_path / "qr.png"
    version = write_png(issued.text, png)
    assert version <= MAX_VERSION
    assert decode_image(png) == issued.text
    zbar = subprocess.run(
        ["zbarimg", "--quiet", "--raw", str(png)], capture_output=True, text=True, check=True
    )
    assert zbar.stdout.strip() == issued.text
    page = demo.client.get(_path(issued.text))
    assert page.status_code == 200
    assert "证书有效" in page.text and "Certificate valid" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    online = demo.client.get(f"/api/v1/verify/{issued.verification_id}").json()
    assert online["status"] == "valid" and online["number"] == issued.number


def test_largest_realistic_payload_fits_version_10() -> None:
    key = ec.generate_private_key(ec.SECP256R1())

    def sign_raw(data: bytes) -> bytes:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    verification_id = new_verification_id()
    claims = Claims(
        "410000", "20264199999999999", "VP", "32", "阿依古丽·***", date(2026, 12, 31), 2**32
    )
    cose = sign_claims(claims, verification_id, b"\xff" * 8, sign_raw)
    text = qr_text("https://jszg.jyt.henan.gov.cn", verification_id, cose)
    assert qr_version(text) <= 10


def test_revocation_shows_at_the_next_request(demo: Demo) -> None:
    issued = demo.certificate("20204100000000002")
    demo.revoke(issued.verification_id, date(2021, 3, 1), "fraud")
    online = demo.client.get(f"/api/v1/verify/{issued.verification_id}").json()
    assert online["status"] == "revoked"
    assert online["revocation_category"]["code"] == "fraud"
    page = demo.client.get(f"/v/{issued.verification_id}")
    assert "证书已撤销" in page.text
    listing = demo.client.get("/.well-known/certsvc/revocations.json").json()
    assert len(listing["revocation_list"]["revoked"]) == 1


def _offline(demo: Demo, text: str) -> dict[str, object]:
    answer = demo.client.post("/api/v1/verify/offline", content=text.encode())
    assert answer.status_code == 200
    return dict(answer.json())


def test_offline_payload_verifies_and_tampering_fails(demo: Demo) -> None:
    issued = demo.certificate("20204100000000003")
    good = _offline(demo, issued.text)
    assert good["signature_valid"] is True and good["key_valid_at_issue"] is True
    assert good["online"]["status"] == "valid"  # type: ignore[index]
    verification_id, cose = parse_qr_text(issued.text)
    tampered = bytearray(cose)
    tampered[len(tampered) // 2] ^= 0x01
    forged = f"{verification_url(demo.settings.public_base_url, verification_id or '')}#"
    bad = _offline(demo, forged + offline_text(bytes(tampered)))
    assert bad["signature_valid"] is False
    moved = demo.certificate("20204100000000004")
    swapped = _offline(demo, moved.text.split("#")[0] + "#" + issued.text.split("#")[1])
    assert swapped["signature_valid"] is False
    bare = _offline(demo, "TC1:" + issued.text.split("#TC1:")[1])
    assert bare["signature_valid"] is True


def test_payload_from_a_key_not_in_the_trust_list_is_invalid(demo: Demo) -> None:
    key = ec.generate_private_key(ec.SECP256R1())

    def sign_raw(data: bytes) -> bytes:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    verification_id = new_verification_id()
    claims = Claims(
        "410000", "20204100000000005", "SS", "02", "张*", date(2020, 1, 1), 1_600_000_000
    )
    text = qr_text(
        "http://x", verification_id, sign_claims(claims, verification_id, b"12345678", sign_raw)
    )
    answer = _offline(demo, text)
    assert answer["signature_valid"] is False
    assert "not in the trust list" in str(answer["reason"])


def test_key_retired_before_issue_says_so(demo: Demo) -> None:
    issued = demo.certificate("20204100000000006", when=2_000_000_000)
    trust = demo.client.get("/.well-known/certsvc/trust-list.json").json()["trust_list"]
    kid = next(k["kid"] for k in trust["keys"] if k["purpose"] == "certificate")
    from datetime import UTC, datetime

    from verify.offline import verify_offline

    for key in trust["keys"]:
        if key["kid"] == kid:
            key["retired_at"] = datetime(2030, 1, 1, tzinfo=UTC).isoformat()
    verdict = verify_offline(issued.text, trust)
    assert not verdict.valid and verdict.key_valid_at_issue is False
    assert "not valid when this was issued" in verdict.reason
    with demo.sessions.begin() as db:
        retire_key(db, kid, datetime(2030, 1, 1, tzinfo=UTC))


def test_unknown_and_malformed_ids_get_the_same_answer(demo: Demo) -> None:
    unknown = demo.client.get(f"/api/v1/verify/{new_verification_id()}")
    malformed = demo.client.get("/api/v1/verify/not-an-id'--")
    assert unknown.status_code == malformed.status_code == 404
    assert unknown.content == malformed.content
    assert (
        demo.client.get("/v/not-an-id").text == demo.client.get(f"/v/{new_verification_id()}").text
    )


def test_clients_are_rate_limited(demo: Demo) -> None:
    limit = demo.settings.verify_rate_per_minute
    codes = [
        demo.client.get(f"/api/v1/verify/{new_verification_id()}").status_code
        for _ in range(limit + 1)
    ]
    assert codes[:limit] == [404] * limit
    assert codes[-1] == 429
    last = demo.client.get(f"/api/v1/verify/{new_verification_id()}")
    assert int(last.headers["retry-after"]) >= 1


def test_no_private_field_in_any_public_answer(demo: Demo, tmp_path: Path) -> None:
    issued = demo.certificate("20204100000000007")
    revoked = demo.certificate("20204100000000008")
    demo.revoke(revoked.verification_id, date(2021, 3, 1), "misconduct")
    answers = []
    for record in (issued, revoked):
        for path in (
            f"/v/{record.verification_id}",
            f"/V/{record.verification_id}",
            f"/api/v1/verify/{record.verification_id}",
        ):
            answers.append(demo.client.get(path))
        answers.append(demo.client.post("/api/v1/verify/offline", content=record.text.encode()))
    answers.append(demo.client.get("/.well-known/certsvc/trust-list.json"))
    answers.append(demo.client.get("/.well-known/certsvc/revocations.json"))
    seen = "\n".join(
        [a.text + json.dumps(dict(a.headers)) for a in answers] + [issued.text, revoked.text]
    )
    for value in PRIVATE.values():
        assert value not in seen
    assert not ID_NUMBER_RE.search(seen.replace(issued.number, "").replace(revoked.number, ""))
    assert not PHONE_RE.search(seen)
    assert not EMAIL_RE.search(seen)


def test_cli_verifies_a_qr_image_offline(demo: Demo, tmp_path: Path) -> None:
    import sys

    issued = demo.certificate("20204100000000009")
    png = tmp_path / "qr.png"
    write_png(issued.text, png)
    trust = tmp_path / "trust-list.json"
    trust.write_text(demo.client.get("/.well-known/certsvc/trust-list.json").text)
    certsvc = str(Path(sys.executable).parent / "certsvc")
    ok = subprocess.run(
        [certsvc, "verify-qr", str(png), "--trust-list", str(trust)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "SIGNATURE VALID" in ok.stdout and issued.number in ok.stdout
    assert "status unknown offline" in ok.stdout and issued.text.split("#")[0] in ok.stdout
    _, tail = issued.text.split("#TC1:")
    broken = issued.text.split("#")[0] + "#TC1:" + ("0" if tail[0] != "0" else "1") + tail[1:]
    bad = subprocess.run(
        [certsvc, "verify-qr", broken, "--trust-list", str(trust)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1 and "NOT VALID" in bad.stderr


def test_a_fresh_body_has_an_empty_revocation_list_so_offline_says_valid(
    demo: Demo, tmp_path: Path
) -> None:
    with demo.sessions() as db:
        first = latest_revocation_list(db)
    assert first is not None and first.version == 1
    assert json.loads(first.document)["revoked"] == {}
    issued = demo.certificate("20204100000000013")
    checked = subprocess.run(
        [CERTSVC, "verify-qr", issued.text], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr
    assert "VALID 有效" in checked.stdout and "not revoked" in checked.stdout
    assert "status unknown" not in checked.stdout


def test_cli_tells_valid_from_revoked_with_a_revocation_list(demo: Demo, tmp_path: Path) -> None:
    issued = demo.certificate("20204100000000010")
    other = demo.certificate("20204100000000012")
    demo.revoke(other.verification_id, date(2021, 1, 4), "error")
    trust = tmp_path / "trust-list.json"
    trust.write_text(demo.client.get("/.well-known/certsvc/trust-list.json").text)

    def check(*extra: str) -> subprocess.CompletedProcess[str]:
        revocations = tmp_path / "revocations.json"
        revocations.write_text(demo.client.get("/.well-known/certsvc/revocations.json").text)
        return subprocess.run(
            [CERTSVC, "verify-qr", *extra, "--trust-list", str(trust)],
            capture_output=True,
            text=True,
            check=False,
        )

    saved = ["--revocations", str(tmp_path / "revocations.json")]
    valid = check(issued.text, *saved)
    assert valid.returncode == 0 and "VALID 有效" in valid.stdout and "not revoked" in valid.stdout
    demo.revoke(issued.verification_id, date(2021, 1, 5), "fraud")
    revoked = check(issued.text, *saved)
    assert revoked.returncode == 1 and "REVOKED" in revoked.stderr
    missing = check(str(tmp_path / "nofile.png"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    assert "payload" not in missing.stderr


def test_offline_endpoint_takes_the_qr_as_text_or_as_json(demo: Demo) -> None:
    issued = demo.certificate("20204100000000011")
    as_text = demo.client.post("/api/v1/verify/offline", content=issued.text.encode())
    as_json = demo.client.post("/api/v1/verify/offline", json={"qr": issued.text})
    assert as_text.status_code == as_json.status_code == 200
    assert as_text.json() == as_json.json() and as_json.json()["signature_valid"] is True
    for wrong in ({"text": issued.text}, ["qr"], {"qr": 5}):
        answer = demo.client.post("/api/v1/verify/offline", json=wrong)
        assert answer.status_code == 422 and '{"qr"' in answer.json()["detail"]
    document = demo.client.get("/openapi.json").json()
    body = document["paths"]["/api/v1/verify/offline"]["post"]["requestBody"]["content"]
    assert set(body) == {"text/plain", "application/json"}


@pytest.mark.parametrize("text", ["", "TC1:", "http://x/V/ABC#TC1:00", "x" * 5000])
def test_offline_endpoint_refuses_garbage_cleanly(demo: Demo, text: str) -> None:
    answer = demo.client.post("/api/v1/verify/offline", content=text.encode())
    assert answer.status_code in (200, 413)
    if answer.status_code == 200:
        assert answer.json()["signature_valid"] is False


def test_cli_refuses_an_older_revocation_list_and_an_unpinned_root(
    demo: Demo, tmp_path: Path
) -> None:
    issued = demo.certificate("20204100000000013")
    trust = tmp_path / "trust-list.json"
    trust.write_text(demo.client.get("/.well-known/certsvc/trust-list.json").text)
    saved = []
    for n, number in enumerate(("20204100000000014", "20204100000000015"), start=1):
        demo.revoke(demo.certificate(number).verification_id, date(2021, 1, n), "error")
        saved.append(tmp_path / f"revocations-{n}.json")
        saved[-1].write_text(demo.client.get("/.well-known/certsvc/revocations.json").text)
    seen = tmp_path / "seen.json"

    def check(revocations: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        lists = ["--trust-list", str(trust), "--revocations", str(revocations)]
        return subprocess.run(
            [CERTSVC, "verify-qr", issued.text, *lists, "--seen", str(seen), *extra],
            capture_output=True,
            text=True,
            check=False,
        )

    newer = check(saved[1])  # init signed the empty version 1
    assert newer.returncode == 0 and "revocation list version 3" in newer.stdout
    older = check(saved[0])
    assert older.returncode == 2 and "older than version 3" in older.stderr
    pinned = demo.anchors
    assert check(saved[1], "--anchor", pinned).returncode == 0
    other = check(saved[1], "--anchor", "ab" * 32)
    assert other.returncode == 2 and "not pinned" in other.stderr
