"""`certsvc verify-qr`: check a certificate's QR code offline, from an image or its text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from certsvc.db import database_session
from certsvc.settings import get_settings
from verify.codes import QUALIFICATIONS, SUBJECTS
from verify.offline import verify_offline
from verify.qrimage import decode_image
from verify.trust import TrustListInvalid, latest_trust_list, open_trust_list, published

console = Console()


def _trust(trust_list: Path | None) -> dict[str, Any]:
    if trust_list is not None:
        try:
            served = json.loads(trust_list.read_text())
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(f"trust list: cannot read {trust_list} ({exc})") from None
    else:
        with database_session(get_settings().resolved_database_url) as db:
            signed = latest_trust_list(db)
            if signed is None:
                raise typer.BadParameter("trust list: none published here; pass --trust-list")
            served = published(signed)
    try:
        return open_trust_list(served)
    except TrustListInvalid as exc:
        raise typer.BadParameter(str(exc)) from None


def verify_qr(
    image_or_text: Annotated[str, typer.Argument(help="a QR image file, or the QR's text")],
    trust_list: Annotated[
        Path | None, typer.Option(help="trust-list.json saved from the body (else the local one)")
    ] = None,
) -> None:
    """Verify a certificate QR code with no network access; exit 1 if it does not hold."""
    path = Path(image_or_text)
    try:
        text = decode_image(path) if path.is_file() else image_or_text
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    verdict = verify_offline(text, _trust(trust_list))
    if not verdict.valid or verdict.claims is None:
        typer.echo(f"NOT VALID 无效: {verdict.reason}", err=True)
        raise typer.Exit(1)
    claims = verdict.claims
    console.print("[green]VALID 有效[/green]: signature holds against the trust list")
    console.print(f"  证书编号 number       {claims.number}")
    console.print(f"  持证人 holder         {claims.masked_name}")
    console.print(f"  资格 qualification    {QUALIFICATIONS.get(claims.qualification, ('?',))[0]}")
    console.print(f"  学科 subject          {SUBJECTS.get(claims.subject, ('?',))[0]}")
    console.print(f"  认定日期 issue date   {claims.issue_date.isoformat()}")
    console.print("  (offline check: revocation status needs the online page or revocations.json)")
