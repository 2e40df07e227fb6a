"""`certsvc verify-qr`: check a certificate's QR code offline, from an image or its text.

A signature proves the certificate was issued; only a revocation list says it still stands. So
the answer is "valid" only against a revocation list (saved from the body with `--revocations`,
or the local register when the command runs beside the service); without one it says the
signature holds and where to check the status online.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from certsvc.cli_output import make_console
from certsvc.db import database_session
from certsvc.settings import get_settings
from verify.codes import QUALIFICATIONS, SUBJECTS
from verify.offline import OfflineVerdict, verify_offline
from verify.payload import PREFIX
from verify.qrimage import decode_image
from verify.trust import (
    TrustListInvalid,
    latest_trust_list,
    open_trust_list,
    published,
    revocation_list,
    revoked_entry,
)

console = make_console()


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"{what}: cannot read {path} ({exc})") from None


def _local_lists() -> tuple[dict[str, Any], dict[str, Any]]:
    """The trust list and revocation list of the register beside this command."""
    with database_session(get_settings().resolved_database_url) as db:
        signed = latest_trust_list(db)
        if signed is None:
            raise typer.BadParameter("trust list: none published here; pass --trust-list")
        served = published(signed)
        return served, revocation_list(db, served["trust_list"])


def _is_revoked(listing: dict[str, Any], trust: dict[str, Any], verification_id: str) -> bool:
    """Whether the revocation list names the id; it must belong to this trust list."""
    if listing.get("trust_list_version") != trust.get("version"):
        raise typer.BadParameter(
            "revocations: made for another version of the trust list; save both again"
        )
    try:
        salt = base64.b64decode(str(listing["salt"]), validate=True)
        revoked = set(listing["revoked"])
    except (KeyError, TypeError, binascii.Error):
        raise typer.BadParameter("revocations: not a revocation list") from None
    return revoked_entry(salt, verification_id) in revoked


def _scanned(image_or_text: str) -> str:
    """The QR's text: the argument itself when it looks like one, else the image it names."""
    if image_or_text.upper().startswith(PREFIX) or "#" in image_or_text:
        return image_or_text
    path = Path(image_or_text)
    if not path.is_file():
        raise typer.BadParameter(f"no such file: {image_or_text}")
    try:
        return decode_image(path)
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None


def verify_qr(
    image_or_text: Annotated[str, typer.Argument(help="a QR image file, or the QR's text")],
    trust_list: Annotated[
        Path | None, typer.Option(help="trust-list.json saved from the body (else the local one)")
    ] = None,
    revocations: Annotated[
        Path | None,
        typer.Option(help="revocations.json saved from the body, to tell valid from revoked"),
    ] = None,
) -> None:
    """Verify a certificate QR code with no network access; exit 1 if it does not hold."""
    text = _scanned(image_or_text)
    listing: dict[str, Any] | None = None
    if trust_list is None:
        served, listing = _local_lists()
    else:
        served = _read_json(trust_list, "trust list")
    if revocations is not None:
        listing = _read_json(revocations, "revocations")
    try:
        trust = open_trust_list(served)
    except TrustListInvalid as exc:
        raise typer.BadParameter(str(exc)) from None
    verdict = verify_offline(text, trust)
    if not verdict.valid or verdict.claims is None or verdict.verification_id is None:
        typer.echo(f"NOT VALID 无效: {verdict.reason}", err=True)
        raise typer.Exit(1)
    if listing is None:
        online = text.partition("#")[0] if "#" in text else "the body's verification page"
        console.print(
            "[yellow]SIGNATURE VALID 签名有效[/yellow]: status unknown offline "
            f"(check online: {online})"
        )
    elif _is_revoked(listing, trust, verdict.verification_id):
        typer.echo("REVOKED 已撤销: the signature holds, but the certificate is revoked", err=True)
        _print_claims(verdict)
        raise typer.Exit(1)
    else:
        generated = listing.get("generated_at", "?")
        console.print(f"[green]VALID 有效[/green]: signature holds; not revoked as of {generated}")
    _print_claims(verdict)


def _print_claims(verdict: OfflineVerdict) -> None:
    claims = verdict.claims
    assert claims is not None
    console.print(f"  证书编号 number       {claims.number}")
    console.print(f"  持证人 holder         {claims.masked_name}")
    console.print(f"  资格 qualification    {QUALIFICATIONS.get(claims.qualification, ('?',))[0]}")
    console.print(f"  学科 subject          {SUBJECTS.get(claims.subject, ('?',))[0]}")
    console.print(f"  认定日期 issue date   {claims.issue_date.isoformat()}")
