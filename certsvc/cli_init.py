"""`certsvc init`: create or upgrade the database and provision what the service needs."""

from __future__ import annotations

from certsvc.bootstrap import initialise
from certsvc.cli_output import make_console
from certsvc.settings import get_settings

console = make_console(stderr=True)


def init() -> None:
    """Create or upgrade the database and provision the demo body, tokens, keys, certificates,
    staff accounts and workstation when missing. Safe to run again."""
    settings = get_settings()
    with console.status("initialising") as status:
        report = initialise(settings, lambda step: status.update(f"initialising: {step}"))
    for item in report.created:
        console.print(f"created {item}")
    console.print(
        f"ready: home {settings.resolved_home}; demo credentials in {report.credentials_file} "
        "(owner-only)"
    )
