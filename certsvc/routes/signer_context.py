"""What the signer routes share: the signer's view of the caller, and the per-process signing
objects held on `app.state`."""

from __future__ import annotations

from fastapi import Request

from certsvc.accounts import StaffAccount
from certsvc.workstations import Workstation
from signer.actor import Actor
from signer.documents import DocumentSigner
from signer.gate import SigningGate
from signer.sessions import SigningSessions


def actor_of(account: StaffAccount, workstation: Workstation | None = None) -> Actor:
    """The authenticated staff member (and the workstation that proved the request)."""
    return Actor(
        username=account.username,
        account_id=account.id,
        role=account.role.value,
        workstation=workstation.name if workstation is not None else None,
    )


def signing_sessions(request: Request) -> SigningSessions:
    sessions: SigningSessions = request.app.state.signing_sessions
    return sessions


def signing_gate(request: Request) -> SigningGate:
    gate: SigningGate = request.app.state.signing_gate
    return gate


def document_signer(request: Request) -> DocumentSigner:
    signer: DocumentSigner = request.app.state.document_signer
    return signer
