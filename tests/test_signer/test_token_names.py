"""A USBKey is named by its serial or by its label: each name finds exactly one token, and the
register refuses a token whose label or serial already names another."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from certsvc.bootstrap import INIT_SIGNER
from common.errors import Conflict, NotFound
from signer.custody import find_token, register_token


def test_a_token_is_found_by_serial_or_label_and_no_name_is_shared(session: Session) -> None:
    register_token(
        session, INIT_SIGNER, "a1b2c3d4e5f60718", "USBKEY-01", "SoftHSM", "OpenDNSSEC", None
    )
    assert find_token(session, "USBKEY-01").serial == "a1b2c3d4e5f60718"
    assert find_token(session, "a1b2c3d4e5f60718").label == "USBKEY-01"
    with pytest.raises(NotFound, match=r"^token_serial: no registered USBKey"):
        find_token(session, "USBKEY-02", "token_serial")
    for serial, label in (
        ("0f0f0f0f0f0f0f0f", "a1b2c3d4e5f60718"),  # a label that is another token's serial
        ("USBKEY-01", "USBKEY-02"),  # a serial that is another token's label
        ("0f0f0f0f0f0f0f0f", "USBKEY-01"),  # the same label twice
    ):
        with pytest.raises(Conflict, match="already names USBKey a1b2c3d4e5f60718"):
            register_token(session, INIT_SIGNER, serial, label, "SoftHSM", "OpenDNSSEC", None)
    register_token(
        session, INIT_SIGNER, "0f0f0f0f0f0f0f0f", "USBKEY-02", "SoftHSM", "OpenDNSSEC", None
    )
    assert find_token(session, "USBKEY-02").serial == "0f0f0f0f0f0f0f0f"
