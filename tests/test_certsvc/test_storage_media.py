"""Storage media in the custody register (三(三)2): an admin registers a medium in a named
person's custody, it changes hands only by the holder's offer and the incoming person's
acceptance, each step is audited, and the listing shows custodian and backing. A custodian
written into the database by a DBA is shown unbacked and named by the grants check."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from audit.models import AuditEventRow
from certsvc.accounts import Role, StaffAccount
from certsvc.grants import unbacked_grants
from certsvc.storage_media import StorageMedium
from service_helpers import MakeStaff

MEDIA = "/api/v1/custody/media"
DISK = {
    "label": "USB-DATA-01",
    "kind": "usb-disk",
    "description": "现场确认数据导出专用U盘",
    "custodian": "",
}


def test_media_are_registered_handed_over_and_listed(
    client: TestClient, make_staff: MakeStaff, sessions: sessionmaker[Session]
) -> None:
    admin = make_staff(Role.ADMIN)
    holder, incoming, other = (make_staff(Role.REGISTRAR) for _ in range(3))
    disk = {**DISK, "custodian": holder.username}
    assert client.post(MEDIA, json=disk, headers=holder.auth).status_code == 403
    for wrong, field in (
        ({"kind": "floppy"}, "kind"),
        ({"label": "a b"}, "label"),
        ({"custodian": "nobody-here"}, "custodian"),
    ):
        refused = client.post(MEDIA, json={**disk, **wrong}, headers=admin.auth)
        assert refused.status_code in (404, 422) and field in refused.text
    made = client.post(MEDIA, json=disk, headers=admin.auth)
    assert made.status_code == 201, made.text
    assert (made.json()["custodian"], made.json()["custody_backed"]) == (holder.username, True)
    assert client.post(MEDIA, json=disk, headers=admin.auth).status_code == 409

    offer = f"{MEDIA}/USB-DATA-01/handovers"
    assert client.post(offer, json={"to": incoming.username}, headers=other.auth).status_code == 409
    offered = client.post(offer, json={"to": incoming.username}, headers=holder.auth)
    assert offered.status_code == 201, offered.text
    handover = offered.json()["id"]
    listed = client.get(MEDIA, headers=other.auth).json()
    assert [(m["custodian"], m["pending_handover_to"]) for m in listed] == [
        (holder.username, incoming.username)
    ]
    accept = f"{MEDIA}/handovers/{handover}/accept"
    assert client.post(accept, headers=other.auth).status_code == 409
    assert client.post(accept, headers=incoming.auth).json()["status"] == "completed"
    assert client.post(accept, headers=incoming.auth).status_code == 409
    listed = client.get(MEDIA, headers=admin.auth).json()
    assert [(m["custodian"], m["custody_backed"], m["pending_handover_to"]) for m in listed] == [
        (incoming.username, True, None)
    ]
    with sessions() as db:
        actions = db.scalars(
            select(AuditEventRow.action).where(AuditEventRow.object == "medium:USB-DATA-01")
        ).all()
        assert actions == [
            "custody.medium.register",
            "custody.medium.handover_offer",
            "custody.medium.handover_accept",
        ]
        assert unbacked_grants(db) == []

    # A DBA gives the medium back to the first holder, around the service.
    with sessions.begin() as db:
        first = db.scalar(select(StaffAccount.id).where(StaffAccount.username == holder.username))
        db.execute(update(StorageMedium).values(custodian_id=first))
    listed = client.get(MEDIA, headers=admin.auth).json()
    assert [(m["custodian"], m["custody_backed"]) for m in listed] == [(holder.username, False)]
    with sessions() as db:
        assert [str(g) for g in unbacked_grants(db)] == [
            "custody of storage medium USB-DATA-01: no grant event on record matches it"
        ]
