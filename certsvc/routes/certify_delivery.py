"""Delivery of printed certificates over HTTP (R4): registrars record a pickup (time and
place) or mailing (tracking number); the holder's notice is built from those items and
passes the announcement checker (R5, R8) before it is stored, else 422 naming the kinds of
item found."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from certify.delivery import METHODS, DeliveryPlan, arrange_delivery, delivery_of
from certify.models import Delivery
from certsvc.audit_trail import actor_of
from certsvc.auth import SessionDep
from certsvc.routes.certify_common import ClerkDep, RegistrarDep, contacts, staff_hosts
from certsvc.routes.schemas import ROLE_GATED, answers
from common.errors import NotFound

router = APIRouter(prefix="/api/v1/certify", tags=["certify"], responses=ROLE_GATED)


class DeliveryIn(BaseModel):
    method: str = Field(description=" or ".join(METHODS))
    pickup_at: datetime | None = Field(default=None, description="with a time zone")
    pickup_place: str | None = Field(
        default=None, max_length=100, description="a named office, not a street address"
    )
    tracking_number: str | None = Field(default=None, max_length=40)
    note: str = Field(default="", max_length=200, description="added to the notice, checked")


class DeliveryOut(BaseModel):
    number: str
    method: str
    pickup_at: datetime | None
    pickup_place: str | None
    tracking_number: str | None
    notice: str = Field(description="the text sent to the holder, passed by the checker")
    notified_at: datetime
    recorded_by: str


def _out(number: str, delivery: Delivery) -> DeliveryOut:
    return DeliveryOut(
        number=number,
        method=delivery.method,
        pickup_at=delivery.pickup_at,
        pickup_place=delivery.pickup_place,
        tracking_number=delivery.tracking_number,
        notice=delivery.notice,
        notified_at=delivery.notified_at,
        recorded_by=delivery.recorded_by,
    )


@router.put("/certificates/{number}/delivery", responses=answers(404))
def put_delivery(
    number: str, body: DeliveryIn, request: Request, account: RegistrarDep, db: SessionDep
) -> DeliveryOut:
    """Record or change how an issued certificate reaches its holder, with the notice."""
    plan = DeliveryPlan(
        method=body.method,
        pickup_at=body.pickup_at,
        pickup_place=body.pickup_place,
        tracking_number=body.tracking_number,
        note=body.note,
    )
    delivery = arrange_delivery(
        db, actor_of(account), number, plan, staff_hosts(request), contacts(request, db, None)
    )
    return _out(number, delivery)


@router.get("/certificates/{number}/delivery", responses=answers(404))
def get_delivery(number: str, _: ClerkDep, db: SessionDep) -> DeliveryOut:
    """The delivery on record and the notice sent."""
    delivery = delivery_of(db, number)
    if delivery is None:
        raise NotFound(f"number: no delivery recorded for certificate {number}")
    return _out(number, delivery)
