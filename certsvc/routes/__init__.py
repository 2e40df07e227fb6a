"""The full service's routers: `PUBLIC_ROUTERS` and `STAFF_ROUTERS`. A public verification node
(`certsvc serve --public`) never imports this package: `certsvc.public_app` takes its routes
from `verify` alone."""

from fastapi import APIRouter

from certsvc.routes import (
    admin_accounts,
    admin_workstations,
    audit,
    auth,
    certificates_pdf,
    certify_announcements,
    certify_batches,
    certify_cases,
    certify_corrections,
    certify_delivery,
    certify_reports,
    certify_signing,
    custodian,
    custody,
    documents,
    health,
    hsm_tokens,
    metrics,
    signing_sessions,
    staff,
    vault,
)
from verify.routes import router as verify_router
from verify.tiles import router as tiles_router

# Verification first: it is the hot path of the public side, and routes are matched in order.
PUBLIC_ROUTERS: tuple[APIRouter, ...] = (
    verify_router,
    health.router,
    audit.public_router,
    tiles_router,
)
STAFF_ROUTERS: tuple[APIRouter, ...] = (
    auth.router,
    staff.router,
    admin_accounts.router,
    admin_accounts.approvals,
    admin_workstations.router,
    custodian.router,
    hsm_tokens.router,
    signing_sessions.router,
    custody.router,
    documents.router,
    audit.router,
    certificates_pdf.router,
    vault.router,
    certify_announcements.router,
    certify_batches.router,
    certify_cases.router,
    certify_corrections.router,
    certify_signing.router,
    certify_delivery.router,
    certify_reports.router,
    metrics.router,
)
