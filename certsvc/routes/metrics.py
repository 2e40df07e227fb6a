"""`/api/v1/metrics`: the internal service's figures in the Prometheus text format, for a
scraper holding a staff API token (`Authorization: Bearer …`, Prometheus's `authorization`
setting).

Staff-authenticated rather than loopback-only: behind a reverse proxy on the same host every
request comes from the loopback address, so "loopback" would mean "anyone" the day a proxy is
put in front. Any staff role may read it: the figures are the counts `/healthz` shows already,
nothing more. Never on a public node (`certsvc.public_app` has no staff routes)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from certsvc.auth import SessionDep, StaffDep
from certsvc.routes.schemas import SIGNED_IN
from verify.outbox import backlog

router = APIRouter(prefix="/api/v1", tags=["metrics"], responses=SIGNED_IN)
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(_: StaffDep, db: SessionDep) -> PlainTextResponse:
    """The register relay's lag: how long the oldest change not yet in the public database has
    waited (0 when none waits) and how many wait."""
    pending, oldest = backlog(db)
    lag = 0.0 if oldest is None else oldest.total_seconds()
    text = (
        "# HELP certsvc_relay_lag_seconds How long the oldest register change not yet in the "
        "public database has waited.\n"
        "# TYPE certsvc_relay_lag_seconds gauge\n"
        f"certsvc_relay_lag_seconds {lag:.3f}\n"
        "# HELP certsvc_relay_pending_rows Register changes not yet in the public database.\n"
        "# TYPE certsvc_relay_pending_rows gauge\n"
        f"certsvc_relay_pending_rows {pending}\n"
    )
    return PlainTextResponse(text, media_type=PROMETHEUS_TEXT)
