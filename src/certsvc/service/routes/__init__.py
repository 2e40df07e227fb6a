"""The service's routers: `create_app` includes `PUBLIC_ROUTERS` always and `STAFF_ROUTERS`
unless the node serves only the public side (`certsvc serve --public`)."""

from fastapi import APIRouter

from certsvc.service.routes import (
    admin_accounts,
    admin_workstations,
    audit,
    auth,
    custodian,
    health,
    hsm_tokens,
    signing_sessions,
    staff,
)

PUBLIC_ROUTERS: tuple[APIRouter, ...] = (health.router, audit.public_router)
STAFF_ROUTERS: tuple[APIRouter, ...] = (
    auth.router,
    staff.router,
    admin_accounts.router,
    admin_workstations.router,
    custodian.router,
    hsm_tokens.router,
    signing_sessions.router,
    audit.router,
)
