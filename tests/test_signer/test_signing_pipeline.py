"""The batch signer's pipeline (a token thread signs while the caller verifies and stores) keeps
what signing one by one promised: events in document order, nothing recorded past a token
fault, the faulted chunk rolled back whole, and a re-run that signs the rest in order."""

from __future__ import annotations

import pytest

from common.cose import verify_sign1
from signer.custody import certificate_of
from signer.documents import BatchInterrupted
from signing_env import SigningEnv, certificates
from test_signer.test_signed_documents import _events, _key, _rows


def test_a_fault_records_nothing_after_it_and_a_rerun_signs_in_document_order(
    env: SigningEnv,
) -> None:
    env.open()
    key_id = env.key_id("certificate-1")
    documents = certificates(12)
    # No record behind C00003 (before the fault) nor C00008 (after it, inside the pipeline's
    # reach): only the first refusal is an attempt that happened.
    env.records.missing = {"C00003", "C00008"}
    # Signatures: C00000-C00002, C00004, C00005 go through; the sixth (C00006) meets a
    # pulled USBKey.
    env.bay.arm_fault(env.usbkey["serial"], "sign", "DeviceRemoved", skip=5, unplug=True)
    with pytest.raises(BatchInterrupted) as interrupted:
        env.signer.sign_batch(env.custodian, key_id, documents, batch="p1")

    assert interrupted.value.report.signed == []
    assert _rows(env) == [] and _key(env, "certificate-1").usage_count == 0
    assert _events(env, "ok") == []
    assert [e.object for e in _events(env, "failed")] == ["certificate:C00006"]
    assert [e.object for e in _events(env, "refused")] == ["certificate:C00003"]

    env.bay.replug(env.usbkey["serial"])
    env.open()
    report = env.signer.sign_batch(env.custodian, key_id, documents, batch="p1")
    expected = [d.document_id for d in documents if d.document_id not in env.records.missing]
    assert report.signed == expected
    assert [r.document_id for r in report.refused] == ["C00003", "C00008"]
    rows = _rows(env)
    assert [r.document_id for r in sorted(rows, key=lambda r: r.audit_index)] == expected
    assert [e.object for e in _events(env, "ok")] == [f"certificate:{n}" for n in expected]
    certificate = certificate_of(_key(env, "certificate-1"))
    for row in rows:
        verify_sign1(row.cose, certificate)
