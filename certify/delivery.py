"""Delivery of printed certificates (R4): a pickup slot and place, or mailing with a tracking
number, and the notice the holder is sent. The notice is built from allow-listed items
(certificate number, time, place, tracking number) plus an optional hand-written note, and the
whole text passes the announcement checker (R5, R8) before it is stored: a pickup place must
therefore be named (e.g. "市政务服务中心教师资格窗口"), not given as a street address.

The notice is also published on the applicant channel (二(二)3 "通过官方网站等渠道告知申请人"):
the public register keeps the certificate number, the method, and for a pickup its place and
first day (`verify.register.publish_notice`), shown by public nodes at `/api/v1/notices/N`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.trail import record
from certify.announcements import ensure_publishable
from certify.cases import CHINA
from certify.models import Certificate, Delivery
from common.dbtypes import utcnow
from common.errors import InvalidInput, NotFound
from signer.actor import Actor
from verify.register import MAIL, PICKUP, publish_notice

METHODS = (PICKUP, MAIL)
TRACKING_RE = re.compile(r"^[A-Za-z0-9]{6,40}$")
NOTE_MAX = 200


@dataclass(frozen=True)
class DeliveryPlan:
    method: str
    pickup_at: datetime | None = None
    pickup_place: str | None = None
    tracking_number: str | None = None
    note: str = ""


def _validated(plan: DeliveryPlan) -> None:
    if plan.method not in METHODS:
        raise InvalidInput(f"method: one of {', '.join(METHODS)}")
    if len(plan.note) > NOTE_MAX:
        raise InvalidInput(f"note: at most {NOTE_MAX} characters")
    if plan.method == PICKUP:
        if plan.pickup_at is None or not (plan.pickup_place or "").strip():
            raise InvalidInput("pickup_at, pickup_place: both needed for a pickup")
        if plan.pickup_at.tzinfo is None:
            raise InvalidInput("pickup_at: give a time zone (e.g. +08:00)")
        if len(plan.pickup_place or "") > 100:
            raise InvalidInput("pickup_place: at most 100 characters")
        if plan.tracking_number:
            raise InvalidInput("tracking_number: only for mailing")
    else:
        if not TRACKING_RE.fullmatch(plan.tracking_number or ""):
            raise InvalidInput("tracking_number: 6 to 40 letters and digits, needed for mailing")
        if plan.pickup_at is not None or plan.pickup_place:
            raise InvalidInput("pickup_at, pickup_place: only for a pickup")


def notice_text(number: str, plan: DeliveryPlan) -> str:
    """The holder's notice, from allow-listed items only (and the staff's note)."""
    if plan.method == PICKUP:
        assert plan.pickup_at is not None and plan.pickup_place is not None
        at = plan.pickup_at.astimezone(CHINA)
        text = (
            f"您的教师资格证书（证书编号 {number}）已制作完成。请于{at.year}年{at.month}月"
            f"{at.day}日 {at:%H:%M} 起到{plan.pickup_place.strip()}领取，"
            f"领取时请携带本人有效身份证件原件。"
        )
    else:
        text = (
            f"您的教师资格证书（证书编号 {number}）已通过邮寄方式寄出，"
            f"邮件单号 {plan.tracking_number}，请注意查收。"
        )
    note = plan.note.strip()
    return f"{text}{note}" if note else text


def arrange_delivery(
    db: Session,
    actor: Actor,
    number: str,
    plan: DeliveryPlan,
    staff_hosts: tuple[str, ...] = (),
    contacts: tuple[str, ...] = (),
) -> Delivery:
    """Record (or change) how an issued certificate reaches its holder, with the checked
    notice; a notice the checker refuses stores nothing."""
    _validated(plan)
    # Locked (PostgreSQL; SQLite writers hold the file's write lock): two clerks recording the
    # first delivery at once would both insert it.
    certificate = db.scalar(
        select(Certificate).where(Certificate.number == number).with_for_update()
    )
    if certificate is None or certificate.status != "issued":
        raise NotFound(f"number: no issued certificate {number}")
    notice = notice_text(number, plan)
    ensure_publishable(notice, staff_hosts, contacts)
    delivery = db.get(Delivery, certificate.id)
    if delivery is None:
        delivery = Delivery(certificate_id=certificate.id)
        db.add(delivery)
    delivery.method = plan.method
    delivery.pickup_at = plan.pickup_at
    delivery.pickup_place = plan.pickup_place.strip() if plan.pickup_place else None
    delivery.tracking_number = plan.tracking_number
    delivery.notice = notice
    delivery.notified_at = utcnow()
    delivery.recorded_by = actor.username
    db.flush()
    publish_notice(
        db,
        number,
        plan.method,
        delivery.pickup_place,
        plan.pickup_at.astimezone(CHINA).date() if plan.pickup_at else None,
    )
    record(
        db,
        actor,
        "certify.delivery.arrange",
        f"certificate:{number}",
        details={"method": plan.method, "published": "public_notices"},
    )
    return delivery


def delivery_of(db: Session, number: str) -> Delivery | None:
    certificate = db.scalar(select(Certificate).where(Certificate.number == number))
    if certificate is None:
        raise NotFound(f"number: no certificate {number}")
    return db.get(Delivery, certificate.id)
