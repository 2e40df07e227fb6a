"""`certsvc custodian …`: the custodian's side, run at their registered workstation.

A client of the service, nothing more: every request is signed with the workstation's key; the
API token comes from the environment (`CERTSVC_API_TOKEN` — an argument would land in shell
history and in `ps`); the USBKey PIN is asked for without echo and sent once, to open the
session. One HTTP connection carries the whole job, so the session and the batch reach the same
service worker, and the session is closed at the end whatever happens.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.table import Table

from certsvc.cli_output import make_console
from certsvc.workstations import load_workstation_key, sign_request
from common.errors import CertsvcError
from common.files import open_for_writing

SESSIONS = "/api/v1/signing/sessions"
CERTIFY = "/api/v1/certify"
TOKEN_VARIABLE = "CERTSVC_API_TOKEN"  # noqa: S105 (the variable's name)

console = make_console(stderr=True)
custodian_app = typer.Typer(
    help="Sign and issue from a custodian's workstation (a client of `certsvc serve`).",
    no_args_is_help=True,
)


class ServiceRefused(CertsvcError):
    """The service answered with an error; the message is its own explanation."""


@dataclass
class WorkstationClient:
    """The custodian's connection to the service, signing each request as this workstation."""

    client: httpx.Client
    authorization: str
    name: str
    key: Ed25519PrivateKey

    def call(self, method: str, path: str, body: dict[str, Any] | None, *ok: int) -> Any:
        """Send one signed request; the decoded answer, or `ServiceRefused` saying why not."""
        raw = b"" if body is None else json.dumps(body).encode()
        headers = {
            "Authorization": self.authorization,
            **sign_request(self.key, self.name, method, path, raw, self.authorization),
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            answer = self.client.request(method, path, content=raw, headers=headers)
        except httpx.TransportError as exc:
            raise ServiceRefused(
                f"cannot reach the service at {self.client.base_url}: {type(exc).__name__}"
            ) from None
        if answer.status_code not in ok:
            raise ServiceRefused(f"{method} {path}: {answer.status_code} {_detail(answer)}")
        if not answer.content:
            return None
        if answer.headers.get("content-type", "").startswith("application/json"):
            return answer.json()
        return answer.content


def _read_pin(serial: str) -> str:
    """At a terminal, asked for without echo; otherwise the first line of standard input
    (a PIN piped from a secret store), never an argument or a variable."""
    if sys.stdin.isatty():
        return str(typer.prompt(f"PIN of USBKey {serial}", hide_input=True))
    pin = sys.stdin.readline().rstrip("\r\n")
    if not pin:
        raise ServiceRefused(f"no PIN for USBKey {serial} on standard input")
    return pin


def _detail(answer: httpx.Response) -> str:
    try:
        detail = answer.json().get("detail", answer.text)
    except ValueError:
        return answer.reason_phrase
    if isinstance(detail, list):  # field errors: where and what, never the value
        return "; ".join(f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}" for e in detail)
    return str(detail)


Server = Annotated[str, typer.Option(envvar="CERTSVC_SERVER", help="the service's staff address")]
WorkstationName = Annotated[
    str | None,
    typer.Option(envvar="CERTSVC_WORKSTATION", help="this workstation's registered name"),
]
WorkstationKey = Annotated[
    Path | None,
    typer.Option(
        envvar="CERTSVC_WORKSTATION_KEY",
        exists=True,
        dir_okay=False,
        help="this workstation's private key (PEM)",
    ),
]
UsbKey = Annotated[
    str, typer.Option("--usbkey", help="the USBKey to use: its label (USBKEY-01) or serial")
]


@dataclass(frozen=True)
class Station:
    """Where the custodian works: the service, this workstation and its key, the USBKey."""

    server: str
    name: str
    key_path: Path
    usbkey: str

    def with_session(
        self, key_label: str, activity: str, method: str, path: str, body: dict[str, Any] | None
    ) -> Any:
        """Open a session on the USBKey for `key_label` (PIN asked for), send the one request
        that signs, close the session; the request's answer."""
        token = os.environ.get(TOKEN_VARIABLE, "").strip()
        if not token:
            raise ServiceRefused(
                f"set {TOKEN_VARIABLE} to your API token (from `POST /api/v1/auth/token`); "
                "it is never taken as an argument"
            )
        pin = _read_pin(self.usbkey)
        opening = {"token_serial": self.usbkey, "key_label": key_label, "pin": pin}
        with httpx.Client(base_url=self.server, timeout=600) as client:
            station = WorkstationClient(
                client, f"Bearer {token}", self.name, load_workstation_key(self.key_path)
            )
            opened = station.call("POST", SESSIONS, opening, 201)
            try:
                with console.status(activity):
                    return station.call(method, path, body, 200)
            finally:
                station.call("DELETE", f"{SESSIONS}/{opened['token_serial']}", None, 204, 409)


def _report(report: dict[str, Any], what: str) -> bool:
    """Print a batch report; whether everything asked for is signed."""
    console.print(
        f"{what}: {len(report['signed'])} signed, {len(report['already_signed'])} already "
        f"signed, {len(report['refused'])} refused, {report['not_attempted']} not attempted"
    )
    if report["refused"]:
        table = Table("document", "rule", "why")
        for refusal in report["refused"]:
            table.add_row(refusal["document_id"], refusal["rule"], refusal["detail"])
        console.print(table)
    if report["stopped_by"]:
        console.print(f"stopped by rule [bold]{report['stopped_by']}[/]: nothing more was signed")
    return not report["refused"] and not report["stopped_by"] and not report["not_attempted"]


@custodian_app.callback()
def where(
    ctx: typer.Context,
    workstation: WorkstationName = None,
    workstation_key: WorkstationKey = None,
    server: Server = "http://127.0.0.1:8000",
) -> None:
    """The service, this workstation and its key: options or environment variables."""
    ctx.obj = (server, workstation, workstation_key)


def _station(ctx: typer.Context, usbkey: str) -> Station:
    """Checked here, not as required options, so that every command's --help still works."""
    server, workstation, workstation_key = ctx.obj
    if workstation is None or workstation_key is None:
        raise ServiceRefused(
            "say which workstation this is: --workstation NAME --workstation-key PATH before "
            "the command (or CERTSVC_WORKSTATION and CERTSVC_WORKSTATION_KEY)"
        )
    return Station(server, workstation, workstation_key, usbkey)


@custodian_app.command("sign-decisions")
def sign_decisions(
    ctx: typer.Context,
    batch_id: Annotated[int, typer.Argument(help="certification batch id")],
    usbkey: UsbKey,
    key_label: Annotated[str, typer.Option(help="the decision key on the USBKey")] = "decision-1",
) -> None:
    """Sign every decision of the batch not yet signed (R2, R3 checked by the service);
    exit 1 if any is refused."""
    station = _station(ctx, usbkey)
    path = f"{CERTIFY}/batches/{batch_id}/decisions/sign"
    report = station.with_session(key_label, "signing decisions", "POST", path, None)
    if not _report(report, f"batch {batch_id} decisions"):
        raise typer.Exit(1)


@custodian_app.command("issue")
def issue(
    ctx: typer.Context,
    batch_id: Annotated[int, typer.Argument(help="certification batch id")],
    usbkey: UsbKey,
    key_label: Annotated[
        str, typer.Option(help="the certificate key on the USBKey")
    ] = "certificate-1",
) -> None:
    """Issue a certificate for every signed approval of the batch that has none; prints the
    numbers issued."""
    station = _station(ctx, usbkey)
    path = f"{CERTIFY}/batches/{batch_id}/certificates"
    answer = station.with_session(key_label, "issuing certificates", "POST", path, {})
    for number in answer["issued"]:
        typer.echo(number)
    complete = answer["signing"] is None or _report(answer["signing"], "certificates")
    console.print(f"{len(answer['issued'])} certificate(s) issued")
    if not complete:
        raise typer.Exit(1)


@custodian_app.command("sign-revocations")
def sign_revocations(
    ctx: typer.Context,
    revocation_ids: Annotated[list[int], typer.Argument(help="revocation ids")],
    usbkey: UsbKey,
    key_label: Annotated[
        str, typer.Option(help="the revocation key on the USBKey")
    ] = "revocation-1",
) -> None:
    """Sign revocations approved by two officers; each one signed revokes its certificate at
    once (R10). Exit 1 if any is refused."""
    station = _station(ctx, usbkey)
    body = {"revocation_ids": revocation_ids}
    path = f"{CERTIFY}/revocations/sign"
    report = station.with_session(key_label, "signing revocations", "POST", path, body)
    if not _report(report, "revocations"):
        raise typer.Exit(1)


@custodian_app.command("sign-revocation-list")
def sign_revocation_list(
    ctx: typer.Context,
    usbkey: UsbKey,
    key_label: Annotated[
        str, typer.Option(help="the revocation key on the USBKey")
    ] = "revocation-1",
) -> None:
    """Sign the next revocation list version naming every revocation on record: after an
    upgrade, revocations signed before signed lists existed answer 404 until one names them."""
    station = _station(ctx, usbkey)
    path = f"{CERTIFY}/revocations/list"
    answer = station.with_session(key_label, "signing the revocation list", "POST", path, None)
    if answer["version"] is None:
        console.print("the revocation list already names every recorded revocation")
        return
    console.print(
        f"revocation list version {answer['version']} signed "
        f"({answer['added']} revocation(s) added)"
    )


@custodian_app.command("pdf")
def pdf(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="certificate number")],
    out: Annotated[Path, typer.Option(dir_okay=False, help="where to write the signed PDF")],
    usbkey: UsbKey,
    key_label: Annotated[
        str, typer.Option(help="the certificate key on the USBKey")
    ] = "certificate-1",
) -> None:
    """Write the certificate as a PDF signed on the USBKey (the holder's name it shows is a
    reveal from the vault: audited, and counted against your print limit)."""
    station = _station(ctx, usbkey)
    path = f"/api/v1/certificates/{number}/pdf"
    document = station.with_session(key_label, "signing the PDF", "GET", path, None)
    with open_for_writing(out, "out", "wb") as stream:
        stream.write(document)
    console.print(f"wrote {out} ({len(document):,} bytes)")
