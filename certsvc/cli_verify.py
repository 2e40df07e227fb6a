"""`certsvc verify-qr`: check a certificate's QR code offline, from an image or its text.

A signature proves the certificate was issued; only a revocation list says it still stands. So
the answer is "valid" only against a revocation list (saved from the body with `--revocations`,
or the local register when the command runs beside the service); without one it says the
signature holds and where to check the status online. The trust list is opened only under a
pinned root (`--anchor`, or the one `certsvc init` pinned), and a revocation list older than one
seen before is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from certsvc.cli_output import make_console
from certsvc.db import database_session
from certsvc.settings import get_settings
from verify.anchors import AnchorsInvalid, parse_fingerprints
from verify.codes import QUALIFICATIONS, SUBJECTS
from verify.offline import OfflineVerdict, verify_offline
from verify.payload import PREFIX
from verify.qrimage import decode_image
from verify.trust import (
    RevocationList,
    TrustListInvalid,
    latest_revocation_list,
    latest_trust_list,
    open_revocation_list,
    open_trust_list,
    published,
    published_revocations,
)

console = make_console()
SEEN_FILE = "revocation-list-seen.json"


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"{what}: cannot read {path} ({exc})") from None


def _local_lists() -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The trust list and revocation list of the register beside this command."""
    with database_session(get_settings().resolved_database_url) as db:
        signed = latest_trust_list(db)
        if signed is None:
            raise typer.BadParameter("trust list: none published here; pass --trust-list")
        revocations = latest_revocation_list(db)
        return published(signed), (
            None if revocations is None else published_revocations(revocations)
        )


def _anchors(given: list[str] | None) -> frozenset[str]:
    """The root fingerprints to trust: those given, else the ones pinned by `certsvc init`."""
    try:
        anchors = parse_fingerprints(",".join(given)) if given else get_settings().pinned_anchors()
    except AnchorsInvalid as exc:
        raise typer.BadParameter(str(exc)) from None
    if not anchors:
        raise typer.BadParameter(
            "anchor: no trust anchor pinned here; pass --anchor <SHA-256 of the body's root "
            "certificate>, as the body publishes it"
        )
    return anchors


def _not_older(listing: RevocationList, seen: Path) -> None:
    """Refuse a revocation list older than one accepted before; remember the newest."""
    try:
        newest = int(json.loads(seen.read_text())["version"])
    except FileNotFoundError:
        newest = 0
    except (OSError, ValueError, KeyError, TypeError):
        raise typer.BadParameter(f"seen: {seen} is not a revocation-list record") from None
    if listing.version < newest:
        raise typer.BadParameter(
            f"revocations: version {listing.version} is older than version {newest} seen "
            "before; fetch the current list from the body"
        )
    if listing.version > newest:
        seen.parent.mkdir(parents=True, exist_ok=True)
        seen.write_text(json.dumps({"version": listing.version}) + "\n")


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
    anchor: Annotated[
        list[str] | None,
        typer.Option(help="SHA-256 of the body's root certificate (else the pinned one)"),
    ] = None,
    seen: Annotated[
        Path | None,
        typer.Option(help="where the newest revocation list version seen is kept"),
    ] = None,
) -> None:
    """Verify a certificate QR code with no network access; exit 1 if it does not hold. The
    trust list must be signed under a pinned root; a revocation list must be signed by the
    body's revocation key and not older than one seen before."""
    text = _scanned(image_or_text)
    served_revocations: dict[str, Any] | None = None
    if trust_list is None:
        served, served_revocations = _local_lists()
    else:
        served = _read_json(trust_list, "trust list")
    if revocations is not None:
        served_revocations = _read_json(revocations, "revocations")
    listing: RevocationList | None = None
    try:
        trust = open_trust_list(served, _anchors(anchor))
        if served_revocations is not None:
            listing = open_revocation_list(served_revocations, trust)
    except TrustListInvalid as exc:
        raise typer.BadParameter(str(exc)) from None
    if listing is not None:
        _not_older(listing, seen or get_settings().resolved_home / SEEN_FILE)
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
    elif listing.find(verdict.verification_id) is not None:
        typer.echo("REVOKED 已撤销: the signature holds, but the certificate is revoked", err=True)
        _print_claims(verdict)
        raise typer.Exit(1)
    else:
        issued = listing.document.get("issued_at", "?")
        console.print(
            f"[green]VALID 有效[/green]: signature holds; not revoked as of {issued} "
            f"(revocation list version {listing.version})"
        )
    _print_claims(verdict)


def _print_claims(verdict: OfflineVerdict) -> None:
    claims = verdict.claims
    assert claims is not None
    console.print(f"  证书编号 number       {claims.number}")
    console.print(f"  持证人 holder         {claims.masked_name}")
    console.print(f"  资格 qualification    {QUALIFICATIONS.get(claims.qualification, ('?',))[0]}")
    console.print(f"  学科 subject          {SUBJECTS.get(claims.subject, ('?',))[0]}")
    console.print(f"  认定日期 issue date   {claims.issue_date.isoformat()}")
