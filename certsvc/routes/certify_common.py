"""What the certify routers share: role dependencies, the issuer built from the app's signing
objects, the staff hosts the announcement checker refuses links to, and today's date in China.
Not a router."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from certify.cases import CHINA, site_places
from certify.issuance import Issuer
from certsvc import state
from certsvc.accounts import Role, StaffAccount
from certsvc.auth import require_roles, require_workstation
from certsvc.workstations import Workstation

RegistrarDep = Annotated[StaffAccount, Depends(require_roles(Role.REGISTRAR))]
OfficerDep = Annotated[StaffAccount, Depends(require_roles(Role.OFFICER))]
CustodianDep = Annotated[StaffAccount, Depends(require_roles(Role.CUSTODIAN))]
WorkstationDep = Annotated[Workstation, Depends(require_workstation)]
ClerkDep = Annotated[StaffAccount, Depends(require_roles(Role.REGISTRAR, Role.OFFICER))]
# Those who work on cases read them: registrars, officers, and custodians who sign them.
CaseReaderDep = Annotated[
    StaffAccount, Depends(require_roles(Role.REGISTRAR, Role.OFFICER, Role.CUSTODIAN))
]
ReportDep = Annotated[StaffAccount, Depends(require_roles(Role.OFFICER, Role.SECURITY_OFFICER))]


def china_today() -> date:
    return datetime.now(CHINA).date()


def issuer_of(request: Request, sessions: sessionmaker[Session]) -> Issuer:
    """The issuer for this request, working through `sessions`: a job route's writer sessions
    (`JobSessionsDep`; issuing reads, then writes: on SQLite it must hold the write lock from
    the start)."""
    settings = state.settings(request)
    return Issuer(
        sessions,
        state.document_signer(request),
        state.signing_gate(request),
        state.vault(request),
        settings.body_code,
        settings.public_base_url,
        settings.pinned_anchors(),
    )


def staff_hosts(request: Request) -> tuple[str, ...]:
    """The staff system's own address (the host this request reached), unless the public
    verification side shares it, and the configured system hosts: published texts may not
    name them (R5)."""
    settings = state.settings(request)
    public_host = urlsplit(settings.public_base_url).netloc
    own = request.url.netloc
    return ((own,) if own and own != public_host else ()) + settings.system_host_list


def contacts(request: Request, db: Session, batch_id: int | None) -> tuple[str, ...]:
    """What published texts may name (四(二)): the body's configured contacts and the places
    of its confirmation sites (the batch's, or every batch's)."""
    return state.settings(request).contacts + site_places(db, batch_id)
